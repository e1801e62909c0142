//! Writing the files: compression, the object store, and MAXFILESIZE.
//!
//! Each open file is a compressor whose output is handed, in pieces of [`STAGE_BYTES`], to an
//! `object_store` [`BufWriter`] (one PUT for a small file, a multipart upload with at most
//! [`MAX_IN_FLIGHT`] parts of [`PART_BYTES`] in flight for a large one), so memory stays bounded
//! whatever the size of the result.
//!
//! MAXFILESIZE limits the size of the file as written, that is after compression. A compressor
//! holds some input it has not yet turned into output, so before each row the writer bounds the
//! final size from what has come out so far plus the most the held input can still produce; when
//! that bound would pass the limit it flushes the compressor (after which nothing is held) and
//! bounds again, and only then starts the next part. Files therefore never pass the limit and end
//! close to it. A file always takes at least one row, so a single row larger than the limit still
//! gets written (alone in its file).

use std::io::Write as _;
use std::sync::Arc;

use bytes::Bytes;
use object_store::buffered::BufWriter;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt as _};
use tokio::io::AsyncWriteExt as _;

use crate::error::{Error, Result};
use crate::job::UnloadCompression;
use crate::storage::Store;

use super::layout::Naming;

/// Compressed output handed to the object writer in pieces of about this size.
const STAGE_BYTES: usize = 256 * 1024;
/// Object writer buffer, and the size of a multipart part (S3's minimum part size).
const PART_BYTES: usize = 5 * 1024 * 1024;
/// Multipart parts in flight per file.
const MAX_IN_FLIGHT: usize = 2;
/// Most a compressor adds when it ends its stream.
const TRAILER_BYTES: u64 = 64;

/// The most compressed output `n` input bytes can become (incompressible input grows a little:
/// deflate's stored blocks, zstd's raw blocks, bzip2's worst case).
fn expanded(n: u64) -> u64 {
    n + n / 64 + 1024
}

/// One compressor, writing into a `Vec` that the caller drains.
enum Encoder {
    Plain(Vec<u8>),
    Gzip(flate2::write::GzEncoder<Vec<u8>>),
    Zstd(zstd::stream::write::Encoder<'static, Vec<u8>>),
    Bzip2(bzip2::write::BzEncoder<Vec<u8>>),
}

impl Encoder {
    fn new(compression: UnloadCompression) -> std::io::Result<Self> {
        Ok(match compression {
            UnloadCompression::None => Encoder::Plain(Vec::new()),
            UnloadCompression::Gzip => Encoder::Gzip(flate2::write::GzEncoder::new(
                Vec::new(),
                flate2::Compression::default(),
            )),
            UnloadCompression::Zstd => Encoder::Zstd(zstd::stream::write::Encoder::new(
                Vec::new(),
                zstd::DEFAULT_COMPRESSION_LEVEL,
            )?),
            UnloadCompression::Bzip2 => Encoder::Bzip2(bzip2::write::BzEncoder::new(
                Vec::new(),
                bzip2::Compression::default(),
            )),
        })
    }

    /// The most compressed output the input held inside the compressor can still produce,
    /// whatever was fed (a generous bound on its internal buffers: deflate's window and pending
    /// block, zstd's 128 KiB blocks, bzip2's 600 kB blocks at the default level, plus each one's
    /// output buffer). `None` for plain output, which holds nothing.
    fn held_output_cap(&self) -> Option<u64> {
        match self {
            Encoder::Plain(_) => None,
            Encoder::Gzip(_) => Some(1024 * 1024),
            Encoder::Zstd(_) | Encoder::Bzip2(_) => Some(2 * 1024 * 1024),
        }
    }

    fn write_all(&mut self, data: &[u8]) -> std::io::Result<()> {
        match self {
            Encoder::Plain(v) => {
                v.extend_from_slice(data);
                Ok(())
            }
            Encoder::Gzip(e) => e.write_all(data),
            Encoder::Zstd(e) => e.write_all(data),
            Encoder::Bzip2(e) => e.write_all(data),
        }
    }

    /// Makes the compressor emit everything it holds (a sync flush; the stream goes on).
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Encoder::Plain(_) => Ok(()),
            Encoder::Gzip(e) => e.flush(),
            Encoder::Zstd(e) => e.flush(),
            Encoder::Bzip2(e) => e.flush(),
        }
    }

    /// The output produced so far and not yet taken.
    fn output(&mut self) -> &mut Vec<u8> {
        match self {
            Encoder::Plain(v) => v,
            Encoder::Gzip(e) => e.get_mut(),
            Encoder::Zstd(e) => e.get_mut(),
            Encoder::Bzip2(e) => e.get_mut(),
        }
    }

    /// Ends the stream; the rest of the output.
    fn finish(self) -> std::io::Result<Vec<u8>> {
        match self {
            Encoder::Plain(v) => Ok(v),
            Encoder::Gzip(e) => e.finish(),
            Encoder::Zstd(e) => e.finish(),
            Encoder::Bzip2(e) => e.finish(),
        }
    }
}

/// A file that has been written completely.
#[derive(Debug, Clone)]
pub(super) struct Written {
    pub(super) path: ObjectPath,
    pub(super) location: String,
    pub(super) rows: u64,
    pub(super) bytes: u64,
}

/// One file being written.
struct PartFile {
    path: ObjectPath,
    location: String,
    writer: BufWriter,
    encoder: Encoder,
    rows: u64,
    /// Compressed bytes already handed to the writer.
    taken: u64,
    /// Input fed since the compressor last emitted everything it held.
    fed_since_flush: u64,
}

impl PartFile {
    fn open(
        store: &Arc<dyn ObjectStore>,
        path: ObjectPath,
        location: String,
        compression: UnloadCompression,
        header: &[u8],
    ) -> Result<PartFile> {
        let encoder = Encoder::new(compression)
            .map_err(|e| Error::io("cannot start compressing", &location, e))?;
        let writer = BufWriter::with_capacity(Arc::clone(store), path.clone(), PART_BYTES)
            .with_max_concurrency(MAX_IN_FLIGHT);
        let mut file = PartFile {
            path,
            location,
            writer,
            encoder,
            rows: 0,
            taken: 0,
            fed_since_flush: 0,
        };
        if !header.is_empty() {
            file.feed(header)?;
        }
        Ok(file)
    }

    /// The most this file can weigh once finished if `n` more input bytes are written.
    fn size_bound_with(&mut self, n: usize) -> u64 {
        let cap = self.encoder.held_output_cap();
        let written = self.taken + self.encoder.output().len() as u64;
        let n = n as u64;
        match cap {
            None => written + n,
            Some(cap) => {
                written + expanded(self.fed_since_flush + n).min(cap + expanded(n)) + TRAILER_BYTES
            }
        }
    }

    fn feed(&mut self, data: &[u8]) -> Result<()> {
        self.encoder
            .write_all(data)
            .map_err(|e| Error::io("cannot compress", &self.location, e))?;
        self.fed_since_flush += data.len() as u64;
        Ok(())
    }

    async fn write_row(&mut self, row: &[u8]) -> Result<()> {
        self.feed(row)?;
        self.rows += 1;
        if self.encoder.output().len() >= STAGE_BYTES {
            self.hand_over().await?;
        }
        Ok(())
    }

    /// Flushes the compressor so that the size bound becomes exact.
    fn flush_encoder(&mut self) -> Result<()> {
        self.encoder
            .flush()
            .map_err(|e| Error::io("cannot compress", &self.location, e))?;
        self.fed_since_flush = 0;
        Ok(())
    }

    async fn hand_over(&mut self) -> Result<()> {
        let out = std::mem::take(self.encoder.output());
        self.put(out).await
    }

    async fn put(&mut self, data: Vec<u8>) -> Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        self.taken += data.len() as u64;
        self.writer
            .put(Bytes::from(data))
            .await
            .map_err(|source| Error::Storage {
                action: "cannot write",
                location: self.location.clone(),
                source,
            })
    }

    /// Ends the compressed stream and completes the object. On failure the object may or may not
    /// exist: the caller deletes it.
    async fn finish(mut self) -> Result<Written> {
        let encoder = std::mem::replace(&mut self.encoder, Encoder::Plain(Vec::new()));
        let rest = encoder
            .finish()
            .map_err(|e| Error::io("cannot compress", &self.location, e))?;
        self.put(rest).await?;
        self.writer
            .shutdown()
            .await
            .map_err(|e| Error::io("cannot complete", &self.location, e))?;
        Ok(Written {
            path: self.path,
            location: self.location,
            rows: self.rows,
            bytes: self.taken,
        })
    }

    /// Gives up on the file: a multipart upload is aborted, nothing becomes visible.
    async fn abort(mut self) {
        if let Err(e) = self.writer.abort().await {
            tracing::warn!(location = %self.location, error = %e, "cannot abort an upload");
        }
    }
}

/// The current file of one slice.
struct Slot {
    slice: usize,
    next_part: usize,
    file: Option<PartFile>,
}

/// Every file of one unload.
pub(super) struct Output {
    store: Store,
    naming: Naming,
    compression: UnloadCompression,
    limit: u64,
    header: Vec<u8>,
    slots: Vec<Slot>,
    done: Vec<Written>,
    /// Objects that may exist after a failed completion.
    doubtful: Vec<(ObjectPath, String)>,
}

impl Output {
    /// `slices` files at a time (1 for PARALLEL OFF), each at most `limit` bytes, each starting
    /// with `header` (empty for none).
    pub(super) fn new(
        store: Store,
        naming: Naming,
        compression: UnloadCompression,
        limit: u64,
        header: Vec<u8>,
        slices: usize,
    ) -> Self {
        Output {
            store,
            naming,
            compression,
            limit,
            header,
            slots: (0..slices)
                .map(|slice| Slot {
                    slice,
                    next_part: 0,
                    file: None,
                })
                .collect(),
            done: Vec::new(),
            doubtful: Vec::new(),
        }
    }

    /// Files written at a time: the slices.
    pub(super) fn slices(&self) -> usize {
        self.slots.len()
    }

    fn open_next(&mut self, index: usize) -> Result<()> {
        let slot = &mut self.slots[index];
        let name = self.naming.data_file(slot.slice, slot.next_part);
        let (path, location) = self.store.child(&name);
        slot.next_part += 1;
        slot.file = Some(PartFile::open(
            &self.store.store,
            path,
            location,
            self.compression,
            &self.header,
        )?);
        Ok(())
    }

    async fn close(&mut self, index: usize) -> Result<()> {
        let Some(file) = self.slots[index].file.take() else {
            return Ok(());
        };
        let (path, location) = (file.path.clone(), file.location.clone());
        match file.finish().await {
            Ok(written) => {
                tracing::debug!(location = %written.location, rows = written.rows, bytes = written.bytes, "unload file written");
                self.done.push(written);
                Ok(())
            }
            Err(e) => {
                self.doubtful.push((path, location));
                Err(e)
            }
        }
    }

    /// Writes one rendered row (ending with `\n`) to slice `index`, starting its next part first
    /// when the row would take the current one past the size limit.
    pub(super) async fn write_row(&mut self, index: usize, row: &[u8]) -> Result<()> {
        if self.slots[index].file.is_none() {
            self.open_next(index)?;
        }
        let limit = self.limit;
        let file = self.slots[index].file.as_mut().expect("opened above");
        if file.rows > 0 && file.size_bound_with(row.len()) > limit {
            file.flush_encoder()?;
            if file.size_bound_with(row.len()) > limit {
                self.close(index).await?;
                self.open_next(index)?;
            }
        }
        let file = self.slots[index].file.as_mut().expect("opened above");
        file.write_row(row).await
    }

    /// Completes every file; a slice that got no row still gets one file (with the header, if
    /// any). Returns the files in name order.
    pub(super) async fn finish(&mut self) -> Result<Vec<Written>> {
        for index in 0..self.slots.len() {
            if self.slots[index].next_part == 0 {
                self.open_next(index)?;
            }
            self.close(index).await?;
        }
        let mut files = std::mem::take(&mut self.done);
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(files)
    }

    /// After a failure: aborts the open files and deletes the complete ones, so that nothing of
    /// this unload is left. `also` are further objects to delete (a written manifest).
    pub(super) async fn discard(&mut self, written: Vec<Written>) {
        for slot in &mut self.slots {
            if let Some(file) = slot.file.take() {
                file.abort().await;
            }
        }
        let objects = written
            .into_iter()
            .chain(std::mem::take(&mut self.done))
            .map(|w| (w.path, w.location))
            .chain(std::mem::take(&mut self.doubtful));
        for (path, location) in objects {
            match self.store.store.delete(&path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => {
                    tracing::warn!(%location, error = %e, "cannot delete a file of a failed unload")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;
    use std::io::Read as _;

    fn store() -> Store {
        Store {
            store: Arc::new(InMemory::new()),
            path: ObjectPath::from("out/res_"),
            display: "mem://out/res_".into(),
            is_dir: false,
            local: None,
        }
    }

    async fn read(store: &Store, path: &ObjectPath) -> Vec<u8> {
        store
            .store
            .get(path)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
            .to_vec()
    }

    fn decompress(c: UnloadCompression, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        match c {
            UnloadCompression::None => out.extend_from_slice(data),
            UnloadCompression::Gzip => {
                flate2::read::MultiGzDecoder::new(data)
                    .read_to_end(&mut out)
                    .unwrap();
            }
            UnloadCompression::Zstd => {
                zstd::stream::read::Decoder::new(data)
                    .unwrap()
                    .read_to_end(&mut out)
                    .unwrap();
            }
            UnloadCompression::Bzip2 => {
                bzip2::read::MultiBzDecoder::new(data)
                    .read_to_end(&mut out)
                    .unwrap();
            }
        }
        out
    }

    /// Pseudo-random hex rows: compressible about 2:1, like real data and unlike repeated text.
    fn rows(n: usize) -> Vec<Vec<u8>> {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        (0..n)
            .map(|i| {
                let mut line = format!("{i}|");
                for _ in 0..6 {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    line.push_str(&format!("{x:016x}"));
                }
                line.push('\n');
                line.into_bytes()
            })
            .collect()
    }

    #[tokio::test]
    async fn parts_stay_under_the_limit_and_close_to_it() {
        let limit: u64 = 1024 * 1024;
        let data = rows(60_000); // about 6.3 MB before compression
        for c in [
            UnloadCompression::None,
            UnloadCompression::Gzip,
            UnloadCompression::Zstd,
            UnloadCompression::Bzip2,
        ] {
            let store = store();
            let mut spec = super::super::layout::tests::spec();
            spec.parallel = false;
            spec.compression = c;
            let mut out = Output::new(
                store.clone(),
                Naming::new(&spec),
                c,
                limit,
                b"h\n".to_vec(),
                1,
            );
            for row in &data {
                out.write_row(0, row).await.unwrap();
            }
            let files = out.finish().await.unwrap();
            assert!(files.len() >= 2, "{c:?}: {} file(s)", files.len());
            let mut all = Vec::new();
            for (i, f) in files.iter().enumerate() {
                let bytes = read(&store, &f.path).await;
                assert_eq!(bytes.len() as u64, f.bytes, "{c:?}");
                assert!(f.bytes <= limit, "{c:?}: {} > {limit}", f.bytes);
                if i + 1 < files.len() {
                    assert!(
                        f.bytes > limit - limit / 100,
                        "{c:?}: part {i} is only {} bytes",
                        f.bytes
                    );
                }
                let text = decompress(c, &bytes);
                assert!(text.starts_with(b"h\n"), "{c:?}: header in every file");
                assert_eq!(
                    text.iter().filter(|&&b| b == b'\n').count() as u64,
                    f.rows + 1
                );
                all.extend_from_slice(&text[2..]);
            }
            assert_eq!(all, data.concat(), "{c:?}: every row once, in order");
        }
    }

    #[tokio::test]
    async fn empty_slices_still_get_a_file_and_discard_removes_everything() {
        let store = store();
        let spec = super::super::layout::tests::spec();
        let mut out = Output::new(
            store.clone(),
            Naming::new(&spec),
            UnloadCompression::None,
            u64::MAX,
            b"a,b\n".to_vec(),
            3,
        );
        out.write_row(1, b"1,2\n").await.unwrap();
        let files = out.finish().await.unwrap();
        let names: Vec<_> = files.iter().map(|f| f.path.to_string()).collect();
        assert_eq!(
            names,
            [
                "out/res_0000_part_00",
                "out/res_0001_part_00",
                "out/res_0002_part_00"
            ]
        );
        assert_eq!(read(&store, &files[0].path).await, b"a,b\n");
        assert_eq!(read(&store, &files[1].path).await, b"a,b\n1,2\n");
        out.discard(files).await;
        let left: Vec<_> = futures::TryStreamExt::try_collect::<Vec<_>>(store.store.list(None))
            .await
            .unwrap();
        assert!(left.is_empty(), "{left:?}");
    }
}

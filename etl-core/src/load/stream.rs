//! One input file through the parser: streaming decompression, splitting into pieces at record
//! boundaries on the reading thread, conversion on worker threads, batches handed out in file order.
//!
//! Memory stays bounded whatever the file size: pieces are about [`CHUNK_BYTES`] of input, at most
//! `2 × workers + 2` of them are in flight, and a record may grow to [`MAX_RECORD_BYTES`] (Redshift's
//! 4 MB row limit) before it is rejected.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::io::Read;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::parser::{Batch, LoadError, RecordEnd, RowParser, Scratch};
use super::value::code;
use crate::job::Compression;
use crate::{Error, Result};

/// Input bytes per piece handed to a worker (one [`Batch`] each).
pub const CHUNK_BYTES: usize = 256 * 1024;
/// Longest record accepted: Redshift's limit on one input row.
pub const MAX_RECORD_BYTES: usize = 4 * 1024 * 1024;

/// What one file produced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FileStats {
    /// Lines read, header lines included (a last line without a line feed counts).
    pub lines: u64,
    /// Rows encoded.
    pub rows: u64,
    /// Rows rejected.
    pub rejected: u64,
    /// Bytes read from the reader (compressed size).
    pub bytes_in: u64,
    /// Bytes after decompression.
    pub bytes_out: u64,
}

/// The 19-byte header of PostgreSQL's binary COPY format: signature, flags, header extension length.
pub fn binary_copy_header() -> &'static [u8] {
    b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0"
}

/// The trailer of PostgreSQL's binary COPY format (a field count of -1).
pub fn binary_copy_trailer() -> &'static [u8] {
    b"\xff\xff"
}

/// Counts the bytes read through it (the compressed size).
struct Counting<R> {
    inner: R,
    count: Rc<Cell<u64>>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.set(self.count.get() + n as u64);
        Ok(n)
    }
}

/// A piece of work, in file order.
enum Work {
    /// Whole records for a worker.
    Records(Vec<u8>),
    /// Already done on the reading thread (skipped header lines, a rejected over-long record).
    Done(Batch, u64),
}

/// A worker's answer.
type Outcome = std::result::Result<(Batch, u64), String>;

/// Reads the decompressed stream and cuts it into pieces of whole records.
struct Chunker<'p> {
    parser: &'p RowParser,
    reader: Box<dyn Read + 'p>,
    name: &'p str,
    buf: Vec<u8>,
    eof: bool,
    header_left: u32,
    bytes_out: u64,
    /// Target piece size (tests make it tiny to cut records in every possible place).
    chunk: usize,
}

impl<'p> Chunker<'p> {
    fn fill(&mut self, want: usize) -> Result<()> {
        while !self.eof && self.buf.len() < want {
            let old = self.buf.len();
            let window = (want - old).clamp(4096, 1 << 20);
            self.buf.resize(old + window, 0);
            match self.reader.read(&mut self.buf[old..]) {
                Ok(0) => {
                    self.buf.truncate(old);
                    self.eof = true;
                }
                Ok(n) => {
                    self.buf.truncate(old + n);
                    self.bytes_out += n as u64;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => self.buf.truncate(old),
                Err(e) => {
                    self.buf.truncate(old);
                    return Err(Error::io("cannot read or decompress", self.name, e));
                }
            }
        }
        Ok(())
    }

    /// The end of the last whole record in `buf` (0 if none), the state of the first record, and
    /// whether the record at the cut is longer than [`MAX_RECORD_BYTES`].
    fn last_boundary(&self) -> (usize, RecordEnd, bool) {
        let p = self.parser;
        let buf = &self.buf;
        if !p.multiline() {
            // Over-long lines inside the piece are rejected by the worker, with the same result.
            return match memchr::memrchr(b'\n', buf) {
                Some(i) => (i + 1, RecordEnd::Newline(i), false),
                None => (0, RecordEnd::Open { in_quote: false }, false),
            };
        }
        let mut pos = 0;
        let mut first = None;
        loop {
            let end = p.record_end(buf, pos, self.eof);
            let first_state = *first.get_or_insert(end);
            match end {
                // Records may span lines here: cut before an over-long one, whose end we may not
                // see every time, so that it is treated the same way however the input is read.
                RecordEnd::Newline(i) if i - pos > MAX_RECORD_BYTES => {
                    return (pos, first_state, true);
                }
                RecordEnd::Newline(i) if i + 1 < buf.len() => pos = i + 1,
                RecordEnd::Newline(i) => return (i + 1, first_state, false),
                RecordEnd::Open { .. } => {
                    return (pos, first_state, buf.len() - pos > MAX_RECORD_BYTES);
                }
            }
        }
    }

    /// A record that cannot be parsed as a whole: report its first line and go on after it.
    fn reject_first_line(&mut self, code: u32, why: &str) -> Result<Work> {
        let (raw, lines) = loop {
            if let Some(i) = memchr::memchr(b'\n', &self.buf) {
                let raw = String::from_utf8_lossy(&self.buf[..i.min(1024)]).into_owned();
                self.buf.drain(..=i);
                break (raw, 1);
            }
            if self.eof {
                let raw =
                    String::from_utf8_lossy(&self.buf[..self.buf.len().min(1024)]).into_owned();
                self.buf.clear();
                break (raw, 1);
            }
            // One very long line: keep its start for the report, drop the rest as it streams by.
            self.buf.truncate(1024);
            let want = self.buf.len() + self.chunk;
            let before = self.buf.len();
            self.fill(want)?;
            if let Some(i) = memchr::memchr(b'\n', &self.buf[before..]) {
                let raw = String::from_utf8_lossy(&self.buf[..before]).into_owned();
                self.buf.drain(..=before + i);
                break (raw, 1);
            }
            let keep = before.min(1024);
            let tail_start = self.buf.len();
            self.buf.drain(keep..tail_start);
        };
        let err = LoadError {
            file: self.name.to_owned(),
            line: 1,
            column: None,
            position: 0,
            code,
            reason: why.to_owned(),
            raw_line: raw.clone(),
            raw_field: raw,
        };
        Ok(Work::Done(
            Batch {
                data: Vec::new(),
                rows: 0,
                errors: vec![err],
            },
            lines,
        ))
    }

    /// The next piece of work, or `None` at the end of the file.
    fn next(&mut self) -> Result<Option<Work>> {
        self.fill(self.chunk)?;
        if self.header_left > 0 {
            let mut lines = 0u64;
            while self.header_left > 0 {
                self.fill(self.chunk)?;
                if self.buf.is_empty() {
                    self.header_left = 0;
                    break;
                }
                match self.parser.record_end(&self.buf, 0, self.eof) {
                    RecordEnd::Newline(i) => {
                        if self.parser.multiline() {
                            lines += memchr::memchr_iter(b'\n', &self.buf[..i]).count() as u64;
                        }
                        lines += 1;
                        self.buf.drain(..=i);
                        self.header_left -= 1;
                    }
                    RecordEnd::Open { .. } if self.eof => {
                        lines += 1 + memchr::memchr_iter(b'\n', &self.buf).count() as u64;
                        self.buf.clear();
                        self.header_left = 0;
                    }
                    RecordEnd::Open { .. } if self.buf.len() > MAX_RECORD_BYTES => {
                        // An over-long header line: drop it like a rejected record, silently.
                        if let Work::Done(_, n) = self.reject_first_line(code::INVALID_LINE, "")? {
                            lines += n;
                        }
                        self.header_left -= 1;
                    }
                    RecordEnd::Open { .. } => self.fill(self.buf.len() + self.chunk)?,
                }
            }
            return Ok(Some(Work::Done(Batch::default(), lines)));
        }
        loop {
            if self.buf.is_empty() {
                return Ok(None);
            }
            let (cut, first, too_long) = self.last_boundary();
            if cut > 0 {
                let tail = self.buf[cut..].to_vec();
                let mut piece = std::mem::replace(&mut self.buf, tail);
                piece.truncate(cut);
                self.buf.reserve(self.chunk.min(CHUNK_BYTES));
                return Ok(Some(Work::Records(piece)));
            }
            // No whole record yet.
            if too_long || self.buf.len() > MAX_RECORD_BYTES {
                return self
                    .reject_first_line(
                        code::INVALID_LINE,
                        "Input line is longer than the 4 MB limit of one row",
                    )
                    .map(Some);
            }
            match first {
                RecordEnd::Open { in_quote } if self.eof => {
                    if in_quote {
                        return self
                            .reject_first_line(
                                code::DELIMITER_NOT_FOUND,
                                "Delimiter not found: unmatched quote (a quoted field is not \
                                 closed before the end of the file)",
                            )
                            .map(Some);
                    }
                    // The last record, without a line feed.
                    let piece = std::mem::take(&mut self.buf);
                    return Ok(Some(Work::Records(piece)));
                }
                _ => self.fill(self.buf.len() + self.chunk)?,
            }
        }
    }
}

/// The streaming decompressor of one compression (`Auto` and `None` read the bytes as they are).
pub(crate) fn decoder<'a, R: Read + 'a>(
    reader: R,
    compression: Compression,
) -> Result<Box<dyn Read + 'a>> {
    Ok(match compression {
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(
            std::io::BufReader::with_capacity(256 * 1024, reader),
        )),
        Compression::Bzip2 => Box::new(bzip2::read::MultiBzDecoder::new(
            std::io::BufReader::with_capacity(256 * 1024, reader),
        )),
        Compression::Zstd => Box::new(
            zstd::stream::read::Decoder::new(reader)
                .map_err(|e| Error::io("cannot start zstd decompression of", "input", e))?,
        ),
        Compression::None | Compression::Auto => Box::new(reader),
    })
}

/// Hands finished pieces to the sink in file order and keeps the counts.
struct Emitter<'s> {
    sink: &'s mut dyn FnMut(Batch) -> Result<()>,
    pending: BTreeMap<u64, (Batch, u64)>,
    next: u64,
    stats: FileStats,
}

impl Emitter<'_> {
    fn put(&mut self, seq: u64, batch: Batch, lines: u64) -> Result<()> {
        self.pending.insert(seq, (batch, lines));
        while let Some((mut batch, lines)) = self.pending.remove(&self.next) {
            self.next += 1;
            for e in &mut batch.errors {
                e.line += self.stats.lines;
            }
            self.stats.lines += lines;
            self.stats.rows += batch.rows;
            self.stats.rejected += batch.errors.len() as u64;
            if batch.rows > 0 || !batch.errors.is_empty() {
                (self.sink)(batch)?;
            }
        }
        Ok(())
    }
}

/// Parses one file: `reader` gives the file's raw bytes, compressed as the parser's format says
/// (`Compression::Auto` resolved from `name` with [`Compression::for_file`]).
///
/// Work runs on the calling thread (reading, decompression, cutting at record boundaries, calling
/// `sink`) plus up to `workers` extra threads (conversion and encoding); with `workers == 0` everything
/// runs on the calling thread. `sink` gets batches in file order. IGNOREHEADER lines are skipped at the
/// top of this file. Row errors never stop the parse: they are returned in the batches.
///
/// # Errors
/// An I/O or decompression error (with the file name), or the sink's error, which stops the parse early.
pub fn parse_file<R: Read + Send>(
    reader: R,
    name: &str,
    parser: &RowParser,
    workers: usize,
    sink: &mut dyn FnMut(Batch) -> Result<()>,
) -> Result<FileStats> {
    parse_file_with_chunk(reader, name, parser, workers, CHUNK_BYTES, sink)
}

/// [`parse_file`] with a chosen piece size (in bytes of decompressed input) instead of
/// [`CHUNK_BYTES`]: tests and the fuzz target use tiny pieces to cut records in every possible place.
///
/// # Errors
/// As [`parse_file`].
pub fn parse_file_with_chunk<R: Read + Send>(
    reader: R,
    name: &str,
    parser: &RowParser,
    workers: usize,
    chunk: usize,
    sink: &mut dyn FnMut(Batch) -> Result<()>,
) -> Result<FileStats> {
    let chunk = chunk.max(1);
    let count = Rc::new(Cell::new(0u64));
    let counting = Counting {
        inner: reader,
        count: Rc::clone(&count),
    };
    let compression = parser.compression.for_file(name);
    let reader = decoder(counting, compression).map_err(|e| match e {
        Error::Io { action, source, .. } => Error::io(action, name, source),
        other => other,
    })?;
    let mut chunker = Chunker {
        parser,
        reader,
        name,
        buf: Vec::with_capacity(chunk.min(CHUNK_BYTES) * 2),
        eof: false,
        header_left: parser.ignore_header,
        bytes_out: 0,
        chunk,
    };
    let mut emitter = Emitter {
        sink,
        pending: BTreeMap::new(),
        next: 0,
        stats: FileStats::default(),
    };
    if workers == 0 {
        let mut scratch = Scratch::default();
        let mut seq = 0;
        while let Some(work) = chunker.next()? {
            let (batch, lines) = match work {
                Work::Records(data) => parser.parse_chunk(&data, name, &mut scratch),
                Work::Done(b, l) => (b, l),
            };
            emitter.put(seq, batch, lines)?;
            seq += 1;
        }
    } else {
        run_parallel(&mut chunker, &mut emitter, parser, name, workers)?;
    }
    let mut stats = emitter.stats;
    stats.bytes_out = chunker.bytes_out;
    drop(chunker);
    stats.bytes_in = count.get();
    Ok(stats)
}

fn run_parallel(
    chunker: &mut Chunker<'_>,
    emitter: &mut Emitter<'_>,
    parser: &RowParser,
    name: &str,
    workers: usize,
) -> Result<()> {
    let limit = 2 * workers + 2;
    let (work_tx, work_rx) = crossbeam_channel::bounded::<(u64, Vec<u8>)>(limit);
    let (done_tx, done_rx) = crossbeam_channel::unbounded::<(u64, Outcome)>();
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            let work_rx = work_rx.clone();
            let done_tx = done_tx.clone();
            let stop = &stop;
            scope.spawn(move || {
                let mut scratch = Scratch::default();
                while let Ok((seq, data)) = work_rx.recv() {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        parser.parse_chunk(&data, name, &mut scratch)
                    }))
                    .map_err(|_| format!("the parser panicked on a piece of {name}"));
                    if done_tx.send((seq, outcome)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(work_rx);
        drop(done_tx);
        let result = (|| -> Result<()> {
            let mut seq = 0u64;
            let mut in_flight = 0usize;
            let receive = |in_flight: &mut usize, emitter: &mut Emitter<'_>| -> Result<()> {
                let (s, outcome) = done_rx
                    .recv()
                    .map_err(|_| Error::Internal("the parser workers stopped".into()))?;
                *in_flight -= 1;
                let (batch, lines) = outcome.map_err(Error::Internal)?;
                emitter.put(s, batch, lines)
            };
            while let Some(work) = chunker.next()? {
                // Take finished pieces first, so the sink sees batches as early as possible.
                while let Ok((s, outcome)) = done_rx.try_recv() {
                    in_flight -= 1;
                    let (batch, lines) = outcome.map_err(Error::Internal)?;
                    emitter.put(s, batch, lines)?;
                }
                while in_flight >= limit {
                    receive(&mut in_flight, emitter)?;
                }
                match work {
                    Work::Records(data) => {
                        in_flight += 1;
                        work_tx
                            .send((seq, data))
                            .map_err(|_| Error::Internal("the parser workers stopped".into()))?;
                    }
                    Work::Done(batch, lines) => emitter.put(seq, batch, lines)?,
                }
                seq += 1;
            }
            while in_flight > 0 {
                receive(&mut in_flight, emitter)?;
            }
            Ok(())
        })();
        if result.is_err() {
            stop.store(true, Ordering::Relaxed);
        }
        drop(work_tx);
        result
    })
}

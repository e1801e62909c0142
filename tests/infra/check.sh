#!/usr/bin/env bash
# Static checks of the infrastructure code: cfn/ templates, cfn/guard/ rules, asl/ state machine.
#
#   bash tests/infra/check.sh
#
# Self-contained: installs what is missing and reuses what is there.
#   cfn-lint       the one on PATH, else a virtualenv in $ETL_INFRA_CACHE/venv (pip install cfn-lint)
#   checkov        a virtualenv of its own in $ETL_INFRA_CACHE/checkov-venv (pip install checkov; its many
#                  pinned dependencies stay out of cfn-lint's); run offline (--skip-download). Its Python
#                  (with PyYAML) also runs tests/infra/check_iam.py
#   cfn-guard      the one on PATH or in ~/.cargo/bin, else `cargo install cfn-guard --locked`, building in
#                  ~/.cache/cfn-guard-build ($CFN_GUARD_TARGET_DIR; kept, so a reinstall is quick)
#   asl-validator  tests/infra/node_modules, from the committed package-lock.json (`npm ci`), reinstalled
#                  only when the lock file changed
#   python3, node  from Debian (apt-get, as root) when missing (asl-validator needs Node 18 or later)
# Prints one PASS/FAIL line per check and a closing "N passed, M failed" line; exits 1 on any failure.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE="$ROOT/tests/infra"
CACHE=${ETL_INFRA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/etl-infra}
GUARD_TARGET=${CFN_GUARD_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/cfn-guard-build}
CFN_LINT_VERSION=1.51.0
CFN_GUARD_VERSION=3.2.1
CHECKOV_VERSION=3.2.533
cd "$ROOT" || exit 2

passed=0
failed=0
pass() { echo "PASS $*"; passed=$((passed + 1)); }
fail() { echo "FAIL $*"; failed=$((failed + 1)); }
note() { echo "infra: $*" >&2; }
die() { echo "infra: $*" >&2; echo "0 passed, 1 failed"; exit 1; }

apt_updated=0
apt_install() {
    [ "$(id -u)" = 0 ] || die "missing $*; install it (apt-get install $*) or run as root"
    command -v apt-get >/dev/null || die "missing $* and no apt-get to install it"
    if [ "$apt_updated" = 0 ]; then
        note "apt-get update"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null || die "apt-get update failed"
        apt_updated=1
    fi
    note "apt-get install $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null \
        || die "apt-get install $* failed"
}

# ------------------------------------------------------------------------------------------ tools

ensure_python() {
    if ! command -v python3 >/dev/null; then
        apt_install python3 python3-venv
    fi
}

ensure_cfn_lint() {
    if command -v cfn-lint >/dev/null && cfn-lint --version >/dev/null 2>&1; then
        CFN_LINT=(cfn-lint)
        return
    fi
    local venv="$CACHE/venv"
    if [ ! -x "$venv/bin/cfn-lint" ]; then
        python3 -c 'import venv, ensurepip' 2>/dev/null || apt_install python3-venv python3-pip
        note "installing cfn-lint $CFN_LINT_VERSION into $venv"
        mkdir -p "$CACHE"
        python3 -m venv "$venv" || die "python3 -m venv $venv failed"
        "$venv/bin/pip" install --quiet --disable-pip-version-check "cfn-lint==$CFN_LINT_VERSION" \
            || die "pip install cfn-lint failed"
    fi
    CFN_LINT=("$venv/bin/cfn-lint")
}

ensure_checkov() {
    local venv="$CACHE/checkov-venv"
    if [ ! -x "$venv/bin/checkov" ] || ! "$venv/bin/checkov" --version 2>/dev/null | grep -qx "$CHECKOV_VERSION"; then
        python3 -c 'import venv, ensurepip' 2>/dev/null || apt_install python3-venv python3-pip
        note "installing checkov $CHECKOV_VERSION into $venv"
        mkdir -p "$CACHE"
        rm -rf "$venv"
        python3 -m venv "$venv" || die "python3 -m venv $venv failed"
        "$venv/bin/pip" install --quiet --disable-pip-version-check "checkov==$CHECKOV_VERSION" \
            || die "pip install checkov failed"
    fi
    CHECKOV=("$venv/bin/checkov")
    CHECKOV_PY="$venv/bin/python"
}

ensure_cfn_guard() {
    local cargo_bin="${CARGO_INSTALL_ROOT:-${CARGO_HOME:-$HOME/.cargo}}/bin"
    PATH="$PATH:$cargo_bin"
    if command -v cfn-guard >/dev/null && cfn-guard --version 2>/dev/null | grep -q ' 3\.'; then
        return
    fi
    command -v cargo >/dev/null || die "cfn-guard is missing and there is no cargo to build it"
    note "building cfn-guard $CFN_GUARD_VERSION (cargo install; a few minutes the first time)"
    mkdir -p "$GUARD_TARGET"
    CARGO_TARGET_DIR="$GUARD_TARGET" nice -n 10 \
        cargo install cfn-guard --version "$CFN_GUARD_VERSION" --locked --jobs "${CFN_GUARD_BUILD_JOBS:-1}" \
        >"$GUARD_TARGET/install.log" 2>&1 \
        || { tail -20 "$GUARD_TARGET/install.log" >&2; die "cargo install cfn-guard failed"; }
    command -v cfn-guard >/dev/null || die "cfn-guard installed but not on PATH"
}

ensure_asl_validator() {
    if ! command -v npm >/dev/null || ! command -v node >/dev/null; then
        apt_install nodejs npm
    fi
    node -e 'process.exit(parseInt(process.versions.node, 10) >= 18 ? 0 : 1)' \
        || die "asl-validator needs Node 18 or later, found $(node --version)"
    local stamp="$HERE/node_modules/.package-lock.sha256"
    local want
    want=$(sha256sum "$HERE/package-lock.json" | cut -d' ' -f1)
    if [ ! -x "$HERE/node_modules/.bin/asl-validator" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        note "npm ci in tests/infra"
        (cd "$HERE" && npm ci --no-audit --no-fund --loglevel=error >/dev/null) || die "npm ci failed"
        echo "$want" >"$stamp"
    fi
}

ensure_python
ensure_cfn_lint
ensure_checkov
ensure_cfn_guard
ensure_asl_validator

# ------------------------------------------------------------------------------------------ cfn-lint

for t in cfn/initial.yaml cfn/redshift.yaml; do
    if out=$("${CFN_LINT[@]}" --config-file cfn/.cfnlintrc.yaml -- "$t" 2>&1); then
        pass "cfn-lint $t"
    else
        fail "cfn-lint $t"
        echo "$out" | sed 's/^/     /'
    fi
done

# ------------------------------------------------------------------------------------------ checkov

# Every check runs; a check that does not apply is skipped inline next to its resource with the
# reason (Metadata: checkov: skip:), which check_iam.py's checkov-skips check requires.
for t in cfn/initial.yaml cfn/redshift.yaml; do
    if out=$("${CHECKOV[@]}" --file "$t" --framework cloudformation --skip-download --compact --quiet 2>&1); then
        pass "checkov $t ($(grep -o 'Passed checks: [0-9]*, Failed checks: [0-9]*, Skipped checks: [0-9]*' <<<"$out"))"
    else
        fail "checkov $t"
        echo "$out" | sed 's/^/     /'
    fi
done

# ------------------------------------------------------------------------------------------ IAM

out=$("$CHECKOV_PY" "$HERE/check_iam.py" 2>&1)
rc=$?
echo "$out"
passed=$((passed + $(grep -c '^PASS' <<<"$out")))
failed=$((failed + $(grep -c '^FAIL' <<<"$out")))
if [ "$rc" != 0 ] && ! grep -q '^FAIL' <<<"$out"; then
    fail "check_iam.py exited $rc"
fi

# ------------------------------------------------------------------------------------------ cfn-guard

rules=$(sed -n -E 's/^rule ([A-Za-z0-9_]+).*/\1/p' cfn/guard/*.guard | sort)
n_rules=$(echo "$rules" | grep -c .)
if [ "$n_rules" -ge 12 ]; then
    pass "cfn-guard has $n_rules rules"
else
    fail "cfn-guard has $n_rules rules, expected at least 12"
fi

for t in cfn/initial.yaml cfn/redshift.yaml; do
    if out=$(cfn-guard validate --rules cfn/guard --data "$t" --show-summary fail 2>&1); then
        pass "cfn-guard $t"
    else
        fail "cfn-guard $t"
        echo "$out" | sed 's/^/     /'
    fi
done

# Each rule has a fixture that breaks it, and only it.
for rule in $rules; do
    [ -f "cfn/guard/fixtures/$rule.yaml" ] || fail "cfn-guard rule $rule has no fixture cfn/guard/fixtures/$rule.yaml"
done
for f in cfn/guard/fixtures/*.yaml; do
    want=$(basename "$f" .yaml)
    if ! grep -qx "$want" <<<"$rules"; then
        fail "cfn-guard fixture $f names no rule"
        continue
    fi
    out=$(cfn-guard validate --rules cfn/guard --data "$f" --show-summary fail 2>&1)
    rc=$?
    got=$(sed -n -E 's/^[A-Za-z0-9_.-]+\.guard\/([A-Za-z0-9_]+) +FAIL$/\1/p' <<<"$out" | sort -u | paste -sd, -)
    if [ "$rc" = 19 ] && [ "$got" = "$want" ]; then
        pass "cfn-guard catches fixture $want"
    else
        fail "cfn-guard fixture $want: exit $rc, failed rules [${got}] (expected exactly [$want])"
    fi
done

# ------------------------------------------------------------------------------------------ ASL

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sed -E 's/\$\{([A-Za-z0-9]+)FunctionArn\}/arn:aws:lambda:eu-west-1:123456789012:function:etl-\1/g;
        s/\$\{RedshiftStackName\}/etl-redshift/g' asl/etl.asl.json >"$tmp/etl.asl.json"
if grep -q '\${' "$tmp/etl.asl.json"; then
    fail "asl-validator asl/etl.asl.json: placeholders without a dummy value: $(grep -o '\${[^}]*}' "$tmp/etl.asl.json" | sort -u | paste -sd' ' -)"
elif out=$("$HERE/node_modules/.bin/asl-validator" --json-path "$tmp/etl.asl.json" 2>&1); then
    pass "asl-validator asl/etl.asl.json"
else
    fail "asl-validator asl/etl.asl.json"
    echo "$out" | sed 's/^/     /'
fi

out=$(python3 "$HERE/check_asl.py" 2>&1)
rc=$?
echo "$out"
passed=$((passed + $(grep -c '^PASS' <<<"$out")))
failed=$((failed + $(grep -c '^FAIL' <<<"$out")))
if [ "$rc" != 0 ] && ! grep -q '^FAIL' <<<"$out"; then
    fail "check_asl.py exited $rc"
fi

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]

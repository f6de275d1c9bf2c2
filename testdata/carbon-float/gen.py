#!/usr/bin/python3
"""gen.py writes table.tsv and unicode.tsv: which Graphite value (and
timestamp) tokens carbon accepts, as decided by Debian's python3 running
carbon's own code. README.md says how to run it and what it mirrors.

    apt-get install graphite-carbon     # carbon 1.1.7 for /usr/bin/python3
    /usr/bin/python3 testdata/carbon-float/gen.py

table.tsv has one row per candidate token (the corpus below); unicode.tsv
lists every code point above U+007F that float() reads as a digit or strips
as whitespace. Both are generated: do not edit them by hand.
"""
import math
import os
import struct
import subprocess
import sys
import unicodedata

try:
    from carbon import events, protocols
except ImportError:
    raise SystemExit('gen.py: no carbon for %s: apt-get install graphite-carbon, then run '
                     '/usr/bin/python3 testdata/carbon-float/gen.py' % sys.executable)

here = os.path.dirname(os.path.abspath(__file__))


# ---------------------------------------------------------------- corpus

def corpus():
    """The candidate tokens, as bytes (a str is encoded as UTF-8)."""
    c = []

    def add(*xs):
        for x in xs:
            c.append(x.encode('utf-8') if isinstance(x, str) else x)

    # plain decimals: signs, dots, leading zeros
    add('0', '1', '-1', '+1', '1.5', '-1.5', '+1.5', '12.5', '-0', '+0', '0.0', '-0.0',
        '00', '007', '-007.50', '000000000000000000001', '1.', '.5', '-.5', '+.5', '5.', '-5.',
        '0.', '.0', '-.0', '.', '-.', '+.', '-', '+', '', '+-1', '-+1', '--1', '++1',
        '1-', '1+', '1..2', '1.2.3', '..5', '1,5', '1,000', "1'000", '$1', '1%')
    # exponents
    add('1e5', '1E5', '1e+5', '1e-5', '1e05', '1E-0', '1e0', '-1.25e3', '1.e5', '.5e5',
        '+.5e-3', '1e', '1E', '1e+', '1e-', 'e5', 'E5', '.e5', '-e5', '1e5.5', '1e5e5',
        '1ee5', '1e+-5', '1e--5', '1d5', '1D5', '1e5j', '1j', '1+2j', '1L', '0.1f', '1f')
    # range: overflow to inf, underflow to 0, denormals, rounding edges
    add('1e308', '1.7976931348623157e308', '1.7976931348623158e308',
        '1.7976931348623159e308', '1e309', '1e400', '-1e400', '1E400', '1e99999',
        '1e999999999999999999999', '-1e999999999999999999999', '1e-400', '-1e-400',
        '1e-999999999999999999', '0e999999999', '0e-999999999', '2.2250738585072011e-308',
        '2.2250738585072014e-308', '4.9406564584124654e-324', '5e-324', '-5e-324',
        '2.4703282292062327e-324', '2.4703282292062328e-324', '1e-320', '0.1', '0.3',
        '12345678901234567', '123456789012345678901234567890', '9007199254740993',
        '9007199254740993.000000000000000000001', '9007199254740992.99999999999999999',
        '0.' + '0' * 400 + '1', '1' + '0' * 400, '1' + '0' * 400 + 'e-400',
        '9007199254740993' + '0' * 800 + '1', '9007199254740993' + '0' * 800,
        '0.' + '0' * 340 + '5', '1' * 1000 + 'e-1000', '1e-' + '0' * 30 + '5')
    # underscores in every position (Python: only between two digits)
    add('1_000', '1__000', '_1000', '1000_', '_', '__', '1_000.5', '1_000.000_1',
        '1._5', '1_.5', '1.5_', '._5', '1.0_0', '1e1_0', '1e_10', '1_e10', '1e10_',
        '1e+_5', '1e-1_0', '1_e', '-_1', '+_1', '_-1', '-1_0', '0_0', '0_1', '00_0',
        '1_2_3', '1_2.3_4e5_6', '1__', '1_.', '_.5', '.5_', '1.e_1', 'inf_', 'in_f', '_inf',
        'na_n', 'nan_', '1_000_000_000', '1' + '_0' * 200)
    # hexadecimal and other bases, which strconv (hex) and Python's int()
    # (with base 0) read, and float() does not
    add('0x1p3', '0X1P3', '0x1P-2', '0x10', '0x1', '0x', '0xp1', '0x1.8p1', '0x.8p1',
        '-0x1p3', '+0x1p3', '0x_1p3', '0x1_0p0', '0x1p-1074', '0xg', '1p3', '0b101',
        '0o17', '0B1', '0O7', '0x1e3', '0x1.fffffffffffffp1023')
    # inf and nan spellings
    add('inf', 'Inf', 'INF', 'iNf', '+inf', '-inf', '+Inf', '-Inf', 'infinity',
        'Infinity', 'INFINITY', 'InFiNiTy', '+Infinity', '-infinity', '-INFINITY',
        'infinit', 'infinityy', 'infinitx', 'infin', 'infi', 'in', 'i', 'infs', 'inf.0',
        'infe1', 'inf1', '1inf', '--inf', '+-inf', 'nan', 'NaN', 'NAN', 'nAn', '-nan',
        '+nan', '-NaN', '+NaN', '-NAN', 'nan(1)', 'nan()', 'nan1', 'nanq', 'nans',
        'snan', 'qnan', 'NaN0', '1nan', 'n', 'na', '--nan', '-inf1', 'Nan.0',
        '\u221e', '-\u221e', 'inf\x00', 'nan\x00', 'true', 'None', 'null', 'undefined')
    # whitespace inside the token (carbon splits the line on whitespace
    # before float() sees a field; the router splits on ' ' and '\t' only)
    add(' 1', '1 ', '\t1', '1\t', '1\r', '\r1', '1\v', '\v1', '1\f', '\f1', '1\n',
        '1\x1c', '1\x1d', '1\x1e', '1\x1f', '\x1c1', '1\x1c\u00a0', '1\u00a0', '\u00a01',
        '1\u00a02', '1\u3000', '\u30001', '1\u2000', '1\u200a', '1\u0085', '1\u1680',
        '1\u2028', '1\u2029', '1\u202f', '1\u205f', '1\u200b', '1\ufeff', '\ufeff1',
        '1\u180e', '\v', '\r', '\u00a0', '\u00a0\u00a0', '1\r\r', '\r-1.5e3\r',
        '1_\u00a0', '\u00a0_1', '\u00a0inf\u00a0', '\rnan', '1 2', '1\r2')
    # NUL and other control bytes
    add('\x00', '1\x00', '\x001', '1\x002', '1\x00_0', '1_0\x00', '1\x7f', '\x7f',
        '1\x01', '\x1b[1m1', '1\x08')
    # Unicode digits (Python reads any Nd character as its digit)
    add('\u0661\u0662\u0663', '\u0663.\u0661\u0664', '-\u0661', '+\u0661\u0660',
        '\u0661e\u0663', '\u0661E-\u0662', '\u0661\u0662\u0663\u066b\u0664',
        '\u0661\u0662\u066c\u0663', '\u06f1\u06f2\u06f3', '\u0967\u0968\u0969',
        '\uff11\uff12\uff13', '\uff0d\uff11', '\uff11\uff0e\uff15', '\uff11e\uff15',
        '\uff10x1p3', '\U0001d7cf\U0001d7d0', '\U0001d7d8', '\u07c1', '\u0e51',
        '\u0661_\u0660\u0660\u0660', '1\u0661', '\u0661.5', '\u00b2', '\u00bd',
        '\u216b', '\u3007', '\u4e00', '\U00011f51', '\U0001e4f1', '\U0001fbf1',
        '\u2170', '\uff49\uff4e\uff46', '\u0660', '-\u0660', '\u0660.\u0660',
        '\u0661\u0667\u0660\u0660\u0660\u0660\u0660\u0660\u0660\u0660',
        '\u0661' * 20, '\u0661' * 400 + 'e-400', '\u0661' + '\u0660' * 400,
        '1' + '\u0660' * 40, '\u0661_' * 40 + '\u0661', '\U0001d7ce' * 30,
        '\u0661\u0660\u0660e\u0663\u0660\u0660', '\u0661e\u0664\u0660\u0660',
        '\u0966.\u0967', '\u19da', '\u1369', '\u0f2a')
    # bytes that are not UTF-8 (carbon decodes the line strictly)
    add(b'\xff', b'1\xff', b'\xc2', b'1\xc2', b'\xd9', b'\xd9\xa1\xd9', b'\xed\xa0\x80',
        b'\xc0\xb1', b'\xe0\x80\xb1', b'\xf4\x90\x80\x80', b'\x80', b'1\x80', b'\xef\xbf\xbd')
    # timestamp-like tokens
    add('1700000000', '1700000000.125', '+1700000000', '-1700000000', '1.7e9', '1.7E+09',
        '1_700_000_000', '017e8', '-1', '-1.0', '9223372036854775807', '9223372036854775808',
        '-9223372036854775809', '1e19', '-1e19', '1e300', '18446744073709551616',
        '1700000000.', '.1700000000e10')
    # misc words
    add('twelve', 'abc', 'user42', '42user', 'e', 'E', 'x', '0x', 'NULL')

    seen = set()
    out = []
    for b in c:
        if b not in seen:
            seen.add(b)
            out.append(b)
    return out


# ----------------------------------------------------------- what carbon does

def py_float(b):
    """float() of the decoded token: (accepted, value)."""
    try:
        s = b.decode('utf-8')
    except UnicodeDecodeError:
        return False, None
    try:
        return True, float(s)
    except ValueError:
        return False, None


class Transport:
    """The socket: records a dropped connection."""

    def __init__(self):
        self.lost = False
        self.disconnecting = False

    def loseConnection(self):
        self.lost = self.disconnecting = True


stored = []
events.metricReceived.handlers = [lambda metric, datapoint: stored.append(datapoint)]


def carbon_reads(line):
    """What carbon's MetricLineReceiver (carbon/protocols.py, 1.1.7) does
    with one line: 'stored' (value bits), 'nan-dropped', 'invalid' (logged
    and ignored) or 'connection-dropped' (an exception out of dataReceived,
    on which Twisted closes the connection)."""
    del stored[:]
    r = protocols.MetricLineReceiver()
    r.transport = Transport()
    r.peerName = 'gen.py'
    try:
        r.dataReceived(line + b'\n')
    except Exception as e:  # UnicodeDecodeError, OverflowError, ValueError
        return 'connection-dropped', type(e).__name__
    if r.transport.lost:
        return 'connection-dropped', None
    if len(stored) > 1:
        raise SystemExit('several datapoints from %r' % line)
    if stored:
        return 'stored', stored[0]
    # nothing stored, nothing raised: float() refused a field (logged as an
    # invalid line), or MetricReceiver.metricReceived filtered a NaN value
    fields = line.decode('utf-8').strip().split()
    if len(fields) == 3:
        try:
            v = float(fields[1])
            float(fields[2])
        except ValueError:
            return 'invalid', None
        if v != v:
            return 'nan-dropped', None
    return 'invalid', None


# ------------------------------------------------------------------ output

def escape(b):
    """The token as ASCII: printable bytes but '\\' and ' ' as they are,
    every other byte as \\xHH, '\\' as \\\\."""
    out = []
    for x in b:
        if x == 0x5c:
            out.append('\\\\')
        elif 0x21 <= x <= 0x7e:
            out.append(chr(x))
        else:
            out.append('\\x%02x' % x)
    return ''.join(out)


def bits(f):
    return struct.pack('>d', f).hex()


def version_lines():
    v = subprocess.run([sys.executable, '--version'], capture_output=True, text=True, check=True)
    pkg = subprocess.run(['dpkg-query', '-W', '-f', '${Package} ${Version}\n', 'graphite-carbon', 'python3-minimal'],
                         capture_output=True, text=True)
    return [
        '# generated by: %s testdata/carbon-float/gen.py (do not edit by hand)' % sys.executable,
        '# %s --version: %s' % (sys.executable, (v.stdout or v.stderr).strip()),
        '# packages: %s' % ', '.join(pkg.stdout.splitlines()) if pkg.returncode == 0 else '# packages: (dpkg-query failed)',
        '# unicodedata.unidata_version: %s' % unicodedata.unidata_version,
    ]


def table():
    rows = []
    for b in corpus():
        ok, f = py_float(b)
        if b'\n' in b:
            vline = tline = '-'  # the line would be two lines
            keep = '-'
        else:
            vline, vgot = carbon_reads(b'a.b ' + b + b' 1700000000')
            tline, _ = carbon_reads(b'a.b 1 ' + b)
            keep = '1' if vline == 'stored' else '0'
        try:
            s = b.decode('utf-8')
            ws = any(ch.isspace() for ch in s)
            text = ascii(s)
        except UnicodeDecodeError:
            ws = False
            text = '(not UTF-8)'
        # carbon's reading of the value is float() then the NaN filter,
        # wherever its split leaves the token whole
        if not ws and vline != '-':
            want = 'stored' if ok and f == f else ('nan-dropped' if ok else None)
            if want and vline != want or not want and vline not in ('invalid', 'connection-dropped'):
                raise SystemExit('carbon read %r as %s, float() says %r' % (b, vline, f))
            if vline == 'stored' and bits(vgot[1]) != bits(f):
                raise SystemExit('carbon stored %r for %r, float() says %r' % (vgot[1], b, f))
        rows.append('\t'.join([
            escape(b),
            '1' if ok else '0',
            bits(f) if ok else '-',
            repr(f) if ok else '-',
            keep,
            vline,
            tline,
            '1' if ws else '0',
            text,
        ]))
    with open(os.path.join(here, 'table.tsv'), 'w') as out:
        for line in version_lines():
            out.write(line + '\n')
        out.write('# input: the token, bytes 0x21..0x7e as they are but \\ (written \\\\), others as \\xHH\n')
        out.write('# accepted: 1 if float(token.decode("utf-8")) returns, 0 if it (or the decoding) raises\n')
        out.write('# bits, repr: the IEEE-754 bits (hex, big-endian) and repr() of what float() returned\n')
        out.write('# keep: 1 if carbon stores the datapoint of the line "a.b <token> 1700000000"\n')
        out.write('# value_line, time_line: what carbon 1.1.7 MetricLineReceiver does with "a.b <token> 1700000000"\n')
        out.write('#   and with "a.b 1 <token>": stored, nan-dropped, invalid, connection-dropped (- for a token with \\n)\n')
        out.write('# ws: 1 if the token holds a character str.split() splits on (carbon then sees other fields)\n')
        out.write('# text: ascii() of the decoded token, for reading\n')
        out.write('input\taccepted\tbits\trepr\tkeep\tvalue_line\ttime_line\tws\ttext\n')
        for r in rows:
            out.write(r + '\n')
    return len(rows)


def unicode_table():
    """Every code point above U+007F that float() takes: as a digit (alone)
    or as whitespace it strips (after a digit)."""
    lines = []
    for cp in range(0x80, 0x110000):
        if 0xd800 <= cp <= 0xdfff:
            continue  # surrogates: not in any UTF-8 line
        ch = chr(cp)
        ok, f = py_float(ch.encode('utf-8'))
        if ok:
            lines.append('%04X\tdigit\t%d' % (cp, int(f)))
            continue
        ok, f = py_float(('1' + ch).encode('utf-8'))
        if ok:
            if f != 1.0:
                raise SystemExit('float(%r) = %r' % ('1' + ch, f))
            lines.append('%04X\tspace\t-' % cp)
    with open(os.path.join(here, 'unicode.tsv'), 'w') as out:
        for line in version_lines():
            out.write(line + '\n')
        out.write('# every code point above U+007F (surrogates excepted) that float() reads as a digit\n')
        out.write('# (float(ch) returns) or strips as whitespace (float("1" + ch) returns 1.0); float()\n')
        out.write('# refuses every other one, alone or after "1"\n')
        out.write('codepoint\tclass\tdigit\n')
        for line in lines:
            out.write(line + '\n')
    return len(lines)


def main():
    if sys.version_info < (3, 0):
        raise SystemExit('python3 only')
    n = table()
    u = unicode_table()
    print('table.tsv: %d rows; unicode.tsv: %d code points' % (n, u))


if __name__ == '__main__':
    sys.exit(main())

# Writes the golden messages of plugins/codec/pickle (see README.md).
# Runs under Python 3 and Python 2.7: python gen.py OUTDIR
import decimal
import math
import os
import pickle
import sys

PY2 = sys.version_info[0] == 2
if PY2:
    text_type, int_types = unicode, (int, long)  # noqa: F821
else:
    text_type, int_types = str, (int,)


def fmt(x, time):
    """The text Decode writes for a number, or None when it skips it."""
    if isinstance(x, bool):
        return '1' if x else '0'
    if isinstance(x, int_types):
        try:
            float(x)
        except OverflowError:
            return None
        return str(x).rstrip('L')
    if isinstance(x, (bytes, text_type)):
        try:
            x = float(x)
        except ValueError:
            return None
    if not isinstance(x, float):
        return None
    if math.isnan(x) or (time and math.isinf(x)):
        return None
    if math.isinf(x):
        return 'inf' if x > 0 else '-inf'
    r = repr(x)
    if x == 0 or 1e-5 <= abs(x) < 1e21:
        s = format(decimal.Decimal(r), 'f')
        if '.' in s:
            s = s.rstrip('0').rstrip('.')
        return s
    m, e = r.split('e')
    return m + 'e' + ('-' if e[0] == '-' else '+') + e.lstrip('+-').rjust(2, '0')


def name_ok(n):
    if isinstance(n, text_type):
        n = n.encode('utf-8')
    elif not isinstance(n, bytes):
        return None
    try:
        n.decode('utf-8')
    except UnicodeDecodeError:
        return None
    if not n or any(c <= 32 or c == 127 for c in bytearray(n)):
        return None
    return n


def expect(points):
    lines, skipped = [], 0
    for e in points:
        try:
            name, (ts, v) = e
            if not isinstance(e, (tuple, list)) or not isinstance(e[1], (tuple, list)):
                raise ValueError
        except (ValueError, TypeError):
            skipped += 1
            continue
        n = name_ok(name)
        vs, tss = fmt(v, False), fmt(ts, True)
        if n is None or vs is None or tss is None:
            skipped += 1
            continue
        lines.append(n + b' ' + vs.encode() + b' ' + tss.encode() + b'\n')
    return b''.join(lines), skipped


def write(out, name, data, points):
    with open(os.path.join(out, name + '.pickle'), 'wb') as f:
        f.write(data)
    lines, skipped = expect(points)
    with open(os.path.join(out, name + '.txt'), 'wb') as f:
        f.write(b'# skipped ' + str(skipped).encode() + b'\n' + lines)


def u(s):
    return s.decode('utf-8') if isinstance(s, bytes) else s


def main(out):
    tag = 'py2' if PY2 else 'py3'
    T = 1700000000
    mixed = [
        (u('carbon.agents.host-a.cpuUsage'), (T, 0.25)),
        (u(b'caf\xc3\xa9.\xe2\x82\xac.\xf0\x9f\x93\x88'), (T + 1, 1.5)),
        (u('ints'), (T, 42)),
        (u('neg'), (-1, -7)),
        (u('bool'), (T, True)),
        (u('false'), (T, False)),
        (u('tiny'), (T, 1.5e-7)),
        (u('huge'), (T, 1e300)),
        (u('e21'), (T, 1e21)),
        (u('below.e21'), (T, 123456789012345678901.0)),
        (u('zero'), (T, 0.0)),
        (u('negzero'), (T, -0.0)),
        (u('third'), (T, 1.0 / 3)),
        (u('inf'), (T, float('inf'))),
        (u('nan'), (T, float('nan'))),
        (u('ts.inf'), (float('inf'), 1.0)),
        (u('ts.float'), (1700000000.5, 2.0)),
        (u('long.ts'), (2 ** 40, 3.0)),
        (u('long.big'), (T, 2 ** 70)),
        (u('long.neg'), (T, -(2 ** 70) - 1)),
        (u('long.2p1023'), (T, 2 ** 1023)),
        (u('long.over'), (T, 2 ** 1024)),
        (u('str.value'), (u(' 1000 ' if PY2 else ' 1_000 '), u('1700000000'))),
        (u('str.bad'), (T, u('twelve'))),
        (u('none'), (T, None)),
        (u('with space'), (T, 1)),
        (u('with\ttab'), (T, 1)),
        (u(''), (T, 1)),
        (u('list.entry'), [T, 5]),
        [u('list.outer'), (T, 6)],
        (u('short'), (T,)),
        (u('long.tuple'), (T, 1, 2)),
        (42, (T, 1)),
        u('just a string'),
        (u('tags;env=prod;dc=a'), (T, 8)),
    ]
    for proto in range(0, pickle.HIGHEST_PROTOCOL + 1):
        write(out, '%s-proto%d-mixed' % (tag, proto), pickle.dumps(mixed, proto), mixed)
    # memo reuse: the same name and the same tuple objects many times
    name = u('memo.reused.name.' + 'x' * 100)
    dp = (T, 1.25)
    memo = [(name, dp)] * 3 + [(name, (T + i, float(i))) for i in range(5)]
    for proto in (0, 2, pickle.HIGHEST_PROTOCOL):
        write(out, '%s-proto%d-memo' % (tag, proto), pickle.dumps(memo, proto), memo)
    # big lists: APPENDS batches (1000 items) and, at protocol 4, frames
    big = [(u('big.series.%d' % (i % 37)), (T + i, i * 0.5)) for i in range(5000)]
    for proto in sorted(set((1, 2, 4, 5)) & set(range(pickle.HIGHEST_PROTOCOL + 1))):
        write(out, '%s-proto%d-big' % (tag, proto), pickle.dumps(big, proto), big)
    if PY2:
        # Python 2's str names next to unicode ones
        strs = [('py2.str.name', (T, 1)), (u('py2.unicode'), (T, 2.5)),
                ('caf\xc3\xa9', (T, 3)), ('it\'s"quoted"\\x', (T, 4)),
                ('bad\xff', (T, 5)), (u'caf\xe9.\u20ac\U0001f4c8\\u', (T, long(6))),  # noqa: F821
                ('str.value', (T, ' 12.5 ')), ('long.ts', (long(1700000000), 7))]  # noqa: F821
        for proto in (0, 1, 2):
            write(out, 'py2-proto%d-str' % proto, pickle.dumps(strs, proto), strs)
            import cPickle
            write(out, 'py2-proto%d-cpickle' % proto, cPickle.dumps(strs, proto), strs)
    else:
        # bytes names: BINBYTES from protocol 3 on
        bs = [(b'bytes.name', (T, 1.0)), (b'b' * 300, (T, 2.0)), (b'bad\xff', (T, 3.0)),
              (u('bytes.value'), (T, b'4.5'))]
        for proto in (3, 4, 5):
            write(out, 'py3-proto%d-bytes' % proto, pickle.dumps(bs, proto), bs)


if __name__ == '__main__':
    main(sys.argv[1])

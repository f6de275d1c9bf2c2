/*
 * The object literal syntax both readers take: comments, quoted and
 * numeric keys, escapes, signs, hexadecimal, trailing commas, a repeated key.
 */
(
  {
    "graphiteHost": 'h\x61st\u002eexample\u{2E}com', // "hast.example.com"
    'graphitePort': 0x7d3,
    percentThreshold: [ +90, 99.5, -.5, ],
    flushInterval: 1e4,
    graphite: { globalSuffix: "a\"b\\c\td", legacyNamespace: null },
    prefixStats: 'it\'s',
    deleteIdleStats: false,
    deleteIdleStats: true, /* the last one wins */
  }
);

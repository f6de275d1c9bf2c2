#!/bin/sh
# carbon-c-relay's jump_fnv1a_ch placements of its issue236 test (see ../crelay-issue236.sh).
exec sh testdata/e2e/crelay-issue236.sh jump_fnv1a_ch crelay-jump-fnv1a-ch

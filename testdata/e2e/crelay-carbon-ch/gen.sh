#!/bin/sh
# carbon-c-relay's carbon_ch placements of its issue236 test (see ../crelay-issue236.sh).
exec sh testdata/e2e/crelay-issue236.sh carbon_ch crelay-carbon-ch

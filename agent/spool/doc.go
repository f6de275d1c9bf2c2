// Package spool is an append-only, checksummed log of records on disk with a
// persisted acknowledgement position. An output runner stores batches in it
// while its destination is down or its memory buffer is full, and replays them
// in order later.
//
// # Guarantees
//
//   - A record whose Append has returned survives a kill -9 of the process at
//     any instant: Append returns only after write(2) of the whole record.
//     With Fsync "always" it also survives power loss; with "interval" at most
//     FsyncInterval of appends and acks may be lost to power loss; with "never"
//     the operating system decides.
//   - Corrupt or truncated files never make Open fail and never panic: bad
//     records are skipped and counted (Stats.CorruptRecords, CorruptSegments,
//     TruncatedBytes). Only an unusable directory or a held lock makes Open
//     fail.
//   - The segment files together stay within Options.MaxBytes.
//   - Seqs increase by one per record and continue across restarts. They are
//     never reused while the files are intact; if the newest records are lost
//     (power loss without fsync, files removed by hand), their seqs may be
//     handed out again, though never one at or below the acked position.
//
// # Directory
//
//	lock                      empty; held with flock(LOCK_EX|LOCK_NB) while open
//	ack                       the acknowledgement position (see below)
//	00000000000000000001.seg  segment files, named by the seq of their first record
//	*.tmp                     being written; removed by Open
//
// Integers are little-endian. CRCs are CRC-32C (Castagnoli).
//
// # Segment file
//
// A 24-byte header, then records back to back:
//
//	off size
//	0   6    magic "MRSPSG"
//	6   2    version, 1
//	8   8    base: seq of the first record in the file; equals the file name
//	16  8    prev: seq of the last record written before this file was created
//
// A segment is created as "<name>.tmp" holding only the header and renamed
// into place, so a segment file never has a partial header after a crash.
// A header that does not match (wrong magic, version or base) makes the file a
// corrupt segment (counted once, at Open); its records are still read, since
// each record checks itself.
//
// # Record
//
// A 20-byte header, then the payload:
//
//	off size
//	0   4    crc: CRC-32C of bytes 4 .. 20+len (len, seq, count and data)
//	4   4    len: length of data, at most 1 GiB and at most what the file holds
//	8   8    seq
//	16  4    count: number of metrics in data, as given to Append
//	20  len  data
//
// Within a segment the seqs of the records are consecutive, starting at base.
// A record is valid if its header fits before the end of the file, its length
// fits, its seq is above the previous valid record's and its CRC matches.
// Reading never allocates more than the file holds.
//
// # Recovery
//
// When the record at the read position is not valid, the reader looks for the
// next valid record byte by byte (cheap checks on the header first, the CRC
// only for candidates whose seq could follow the last valid one). The bytes in
// between are one corrupt region, and Stats.CorruptRecords counts the records
// lost in it from the gap in seqs (at least one). Damage that runs to the end
// of a sealed segment (a truncated or deleted file, a zeroed one) is counted
// when a reader leaves the segment, from the next segment's prev field (at
// least one record). A file with a bad header and no valid record counts only
// as a corrupt segment. Each loss is counted once however many readers pass
// it, and only when a reader (or Open) first reads it: damage in a segment
// that is acked or dropped unread is not counted.
//
// Open scans the newest segment (and older ones until one with a valid
// header): that restores the last seq. A damaged tail of the newest segment
// (a torn write, or garbage left by a power loss) is cut off at the end of the
// last valid record and added to Stats.TruncatedBytes; the file is then
// appended to. If the newest file cannot be appended to (bad header, or the
// acked position is past its records), Open starts a new segment, whose base
// is above every existing file name (so a garbage file named far ahead makes
// the seqs jump, which is harmless). Older segments are only read by readers.
//
// # Ack file
//
// 20 bytes: magic "MRSPAK", version 1 (2 bytes), the acked seq (8 bytes), and
// the CRC-32C of the first 16 bytes. It is written to "ack.tmp" and renamed
// over "ack" (fsync of the file and the directory with Fsync "always"; by the
// background flusher with "interval"). If it is missing or corrupt, Open acts
// as if everything on disk was unacked: the position becomes the base of the
// oldest segment minus one, so records are delivered again, never lost.
//
// # Readers
//
// A Reader decodes records straight from the files through its own buffer
// (no allocation per record) and sees appends as they happen, also in
// segments created after it. When the segment it reads is deleted (Ack,
// DropOldest), its next Next continues with the oldest remaining segment.
// Notify gives a channel to wait on after io.EOF.
//
// # Deletion
//
// Ack deletes the sealed segments whose records are all at or below the acked
// seq; the active segment (the newest) stays. When an Append would exceed
// MaxBytes and every record of the active segment is acked, Append starts a
// new segment and deletes the old one. DropOldest deletes the oldest segment
// regardless of acks.
package spool

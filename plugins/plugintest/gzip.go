package plugintest

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"hash/crc32"
)

// GzipBomb is a one-member gzip body of n MiB of zeros (1 GiB: about 1 MB),
// built from the deflate encoding of 1 MiB of zeros following zeros,
// repeated: compressing the whole takes a minute under the race detector.
func GzipBomb(n int) []byte {
	zero := make([]byte, 1<<20)
	var z bytes.Buffer
	fw, _ := flate.NewWriter(&z, flate.BestCompression)
	fw.Write(zero)
	fw.Flush() // ends the blocks on a byte boundary
	first := z.Len()
	fw.Write(zero)
	fw.Flush()
	again := z.Bytes()[first:] // 1 MiB of zeros after zeros
	out := []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff}
	out = append(out, z.Bytes()[:first]...)
	for range n - 1 {
		out = append(out, again...)
	}
	out = append(out, 1, 0, 0, 0xff, 0xff) // final empty stored block
	crc := uint32(0)
	for range n {
		crc = crc32.Update(crc, crc32.IEEETable, zero)
	}
	out = binary.LittleEndian.AppendUint32(out, crc)
	return binary.LittleEndian.AppendUint32(out, uint32(n<<20))
}

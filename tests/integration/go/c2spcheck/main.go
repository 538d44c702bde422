// Command c2spcheck checks an openzoo zoo's transparency log with Go's reference implementation of the
// C2SP formats (golang.org/x/mod/sumdb/note and sumdb/tlog), as any third party would:
//
//	c2spcheck BASE_URL LOG_VKEY [WITNESS_VKEY...]
//
// It opens BASE_URL/zoo/log/checkpoint with note.Open and the log's verifier key, reads the hash tiles
// through tlog.TileHashReader (which authenticates every tile against the checkpoint's root) and
// recomputes the root with tlog.TreeHash, recomputes it again from the entry bundles alone, proves the
// last record's inclusion with tlog.ProveRecord/CheckRecord, and checks one cosignature/v1 line per
// witness key. Each check prints one line; any failure exits 1.
//
// Go's tlog names tiles with their height (tile/8/L/N, tile/8/data/N); C2SP's paths do not carry it
// (tile/L/N, tile/entries/N): the reader below maps one to the other.
package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

func fail(format string, args ...interface{}) {
	fmt.Printf("FAIL "+format+"\n", args...)
	os.Exit(1)
}

func get(url string) []byte {
	resp, err := http.Get(url)
	if err != nil {
		fail("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		fail("GET %s: %d %v %s", url, resp.StatusCode, err, data)
	}
	return data
}

// c2spPath maps Go's tile path (tile/8/L/N or tile/8/data/N) to C2SP's (tile/L/N or tile/entries/N).
func c2spPath(t tlog.Tile) string {
	p := strings.Replace(t.Path(), "tile/8/data/", "tile/entries/", 1)
	return strings.Replace(p, "tile/8/", "tile/", 1)
}

type tileReader struct {
	base  string
	count int
}

func (r *tileReader) Height() int { return 8 }

func (r *tileReader) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		out[i] = get(r.base + "/zoo/log/" + c2spPath(t))
		r.count++
	}
	return out, nil
}

func (r *tileReader) SaveTiles([]tlog.Tile, [][]byte) {}

func main() {
	if len(os.Args) < 3 {
		fail("usage: c2spcheck BASE_URL LOG_VKEY [WITNESS_VKEY...]")
	}
	base, vkey := strings.TrimRight(os.Args[1], "/"), os.Args[2]
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		fail("note.NewVerifier: %v", err)
	}
	msg := get(base + "/zoo/log/checkpoint")
	n, err := note.Open(msg, note.VerifierList(verifier))
	if err != nil {
		fail("note.Open: %v", err)
	}
	lines := strings.Split(strings.TrimSuffix(n.Text, "\n"), "\n")
	if len(lines) < 3 {
		fail("checkpoint body has %d lines", len(lines))
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil {
		fail("checkpoint size: %v", err)
	}
	hash, err := tlog.ParseHash(lines[2])
	if err != nil {
		fail("checkpoint root: %v", err)
	}
	fmt.Printf("checkpoint %s %d verified by %s\n", lines[0], size, n.Sigs[0].Name)
	if size == 0 { // RFC 6962's empty root; Go's sumdb uses the zero hash for it instead
		if hash != tlog.Hash(sha256.Sum256(nil)) {
			fail("an empty tree's root is SHA-256 of nothing, not %v", hash)
		}
		fmt.Printf("empty tree\n")
		for _, w := range os.Args[3:] {
			checkCosignature(n, w)
		}
		return
	}

	reader := &tileReader{base: base}
	tiles := tlog.TileHashReader(tlog.Tree{N: size, Hash: hash}, reader)
	root, err := tlog.TreeHash(size, tiles)
	if err != nil || root != hash {
		fail("root from tiles: %v %v, checkpoint %v", root, err, hash)
	}
	fmt.Printf("tiles root %s (%d tiles)\n", root, reader.count)

	var stored []tlog.Hash
	memory := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			out[i] = stored[x]
		}
		return out, nil
	})
	var last []byte
	for i := int64(0); i < size; {
		width := size - i
		if width > 256 {
			width = 256
		}
		t := tlog.Tile{H: 8, L: -1, N: i / 256, W: int(width)} // L -1: an entry bundle ("data" tile)
		data := get(base + "/zoo/log/" + c2spPath(t))
		for len(data) > 0 {
			if len(data) < 2 {
				fail("truncated entry bundle %s", c2spPath(t))
			}
			length := int(binary.BigEndian.Uint16(data))
			if len(data) < 2+length {
				fail("truncated entry in %s", c2spPath(t))
			}
			last = data[2 : 2+length]
			hashes, err := tlog.StoredHashesForRecordHash(i, tlog.RecordHash(last), memory)
			if err != nil {
				fail("stored hashes: %v", err)
			}
			stored = append(stored, hashes...)
			data = data[2+length:]
			i++
		}
	}
	fromEntries, err := tlog.TreeHash(size, memory)
	if err != nil || fromEntries != hash {
		fail("root from entries: %v %v, checkpoint %v", fromEntries, err, hash)
	}
	fmt.Printf("entries %d root %s\n", size, fromEntries)

	if size > 0 {
		proof, err := tlog.ProveRecord(size, size-1, tiles)
		if err != nil {
			fail("ProveRecord: %v", err)
		}
		if err := tlog.CheckRecord(proof, size, hash, size-1, tlog.RecordHash(last)); err != nil {
			fail("CheckRecord: %v", err)
		}
		fmt.Printf("inclusion of record %d ok (%d hashes)\n", size-1, len(proof))
	}

	for _, w := range os.Args[3:] {
		checkCosignature(n, w)
	}
}

// checkCosignature verifies the witness's cosignature/v1 line (C2SP tlog-cosignature, key type 0x04):
// key id SHA-256(name || "\n" || 0x04 || key)[:4], signature timestamp[8] || Ed25519 over
// "cosignature/v1\ntime <t>\n" || the checkpoint body. Go's note package leaves such lines unverified.
func checkCosignature(n *note.Note, vkey string) {
	parts := strings.SplitN(vkey, "+", 3)
	if len(parts) != 3 {
		fail("witness vkey %q", vkey)
	}
	raw, err := base64.StdEncoding.DecodeString(parts[2])
	if err != nil || len(raw) != 33 || raw[0] != 0x04 {
		fail("witness vkey %q is not a cosignature/v1 key", vkey)
	}
	name, pub := parts[0], ed25519.PublicKey(raw[1:])
	sum := sha256.Sum256(append([]byte(name+"\n\x04"), pub...))
	if hex.EncodeToString(sum[:4]) != parts[1] {
		fail("witness vkey %q: key id mismatch", vkey)
	}
	id := binary.BigEndian.Uint32(sum[:4])
	for _, sig := range n.UnverifiedSigs {
		if sig.Name != name || sig.Hash != id {
			continue
		}
		data, err := base64.StdEncoding.DecodeString(sig.Base64)
		if err != nil || len(data) != 4+8+64 || !bytes.Equal(data[:4], sum[:4]) {
			fail("cosignature of %s is malformed", name)
		}
		ts := binary.BigEndian.Uint64(data[4:12])
		message := fmt.Sprintf("cosignature/v1\ntime %d\n%s", ts, n.Text)
		if !ed25519.Verify(pub, []byte(message), data[12:]) {
			fail("cosignature of %s does not verify", name)
		}
		fmt.Printf("cosignature %s time %d ok\n", name, ts)
		return
	}
	fail("no cosignature of %s on the checkpoint", name)
}

package verity

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// veritysetup returns the path of the reference tool, or skips loudly.
func veritysetup(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("veritysetup")
	if err != nil {
		t.Skip("SKIP: veritysetup not found (Debian: cryptsetup-bin, scripts/deps.sh installs it); compatibility with the reference tool NOT checked")
	}
	return p
}

func run(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// randomData returns n blocks of reproducible pseudo-random bytes.
func randomData(blocks int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 42))
	b := make([]byte, blocks*DefaultBlockSize)
	for i := 0; i+8 <= len(b); i += 8 {
		v := r.Uint64()
		for k := range 8 {
			b[i+k] = byte(v >> (8 * k))
		}
	}
	return b
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// compatSizes are data sizes in blocks around the tree's fan-out (128
// hashes to a block): one block (no levels), one level with a partial, a
// full and a just-overflowing block, and a few MiB of random data.
var compatSizes = []int{1, 2, 127, 128, 129, 768, 128*128 + 1}

func TestBuildVerifiesWithVeritysetup(t *testing.T) {
	vs := veritysetup(t)
	dir := t.TempDir()
	salt, _ := hex.DecodeString("9f1c2e3d4b5a69788796a5b4c3d2e1f00112233445566778899aabbccddeeff0")
	for _, blocks := range compatSizes {
		if blocks > 4096 && testing.Short() {
			continue
		}
		data := randomData(blocks, uint64(blocks))
		for _, tc := range []struct {
			name       string
			superblock bool
			sameFile   bool // hash area after the data in one file
			salt       []byte
		}{
			{"separate", false, false, salt},
			{"separate+superblock", true, false, salt},
			{"appended", false, true, salt},
			{"appended+superblock", true, true, salt},
			{"nosalt", false, false, []byte{}},
			{"randomsalt+superblock", true, false, nil},
		} {
			t.Run(fmt.Sprintf("%d/%s", blocks, tc.name), func(t *testing.T) {
				dataPath := filepath.Join(dir, "data")
				hashPath := filepath.Join(dir, "hash")
				writeFile(t, dataPath, data)
				writeFile(t, hashPath, nil)
				hashOff := int64(0)
				if tc.sameFile {
					hashPath = dataPath
					hashOff = int64(len(data))
				}
				f, err := os.OpenFile(hashPath, os.O_RDWR, 0)
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				tree, err := Build(bytes.NewReader(data), int64(len(data)), f, hashOff, Params{Salt: tc.salt}, tc.superblock)
				if err != nil {
					t.Fatal(err)
				}
				st, _ := f.Stat()
				if got, want := st.Size(), hashOff+tree.HashSize; got != want {
					t.Errorf("hash file size = %d, want %d (HashOffset+HashSize)", got, want)
				}
				root := hex.EncodeToString(tree.RootHash)
				args := []string{"verify", dataPath, hashPath, root, fmt.Sprintf("--hash-offset=%d", hashOff)}
				if !tc.superblock {
					s := "-"
					if len(tree.Salt) > 0 {
						s = hex.EncodeToString(tree.Salt)
					}
					args = append(args, "--no-superblock", "--salt="+s, fmt.Sprintf("--data-blocks=%d", blocks))
				}
				if _, err := run(t, vs, args...); err != nil {
					t.Fatalf("veritysetup rejects Build's tree: %v", err)
				}
				// A wrong root hash must be refused, or the check proves nothing.
				bad := bytes.Clone(tree.RootHash)
				bad[0] ^= 1
				args[3] = hex.EncodeToString(bad)
				if _, err := run(t, vs, args...); err == nil {
					t.Errorf("veritysetup accepts a wrong root hash")
				}
			})
		}
	}
}

var rootHashRE = regexp.MustCompile(`(?m)^Root hash:\s+([0-9a-f]+)$`)

func TestVeritysetupFormatVerifies(t *testing.T) {
	vs := veritysetup(t)
	dir := t.TempDir()
	const uuid = "2f3c7d4e-5a6b-4c8d-9e0f-1a2b3c4d5e6f"
	var uuidBytes [16]byte
	hex.Decode(uuidBytes[:], []byte(strings.ReplaceAll(uuid, "-", "")))
	salt := bytes.Repeat([]byte{0xa5, 0x5a}, 16)
	for _, blocks := range compatSizes {
		if blocks > 4096 && testing.Short() {
			continue
		}
		for _, hashOff := range []int64{0, 8192} {
			t.Run(fmt.Sprintf("%d/offset%d", blocks, hashOff), func(t *testing.T) {
				data := randomData(blocks, uint64(blocks)+7)
				dataPath := filepath.Join(dir, "data")
				hashPath := filepath.Join(dir, "hash")
				writeFile(t, dataPath, data)
				writeFile(t, hashPath, nil)
				out, err := run(t, vs, "format", dataPath, hashPath, "--salt="+hex.EncodeToString(salt),
					"--uuid="+uuid, fmt.Sprintf("--hash-offset=%d", hashOff))
				if err != nil {
					t.Fatal(err)
				}
				m := rootHashRE.FindStringSubmatch(out)
				if m == nil {
					t.Fatalf("no root hash in veritysetup's output:\n%s", out)
				}
				theirs, err := os.ReadFile(hashPath)
				if err != nil {
					t.Fatal(err)
				}
				root, _ := hex.DecodeString(m[1])
				sb, err := ReadSuperblock(bytes.NewReader(theirs), hashOff)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(sb.Marshal(), theirs[hashOff:hashOff+SuperblockSize]) {
					t.Errorf("superblock does not round-trip")
				}
				tree, err := TreeFromSuperblock(sb, hashOff, root)
				if err != nil {
					t.Fatal(err)
				}
				if err := Verify(bytes.NewReader(data), bytes.NewReader(theirs), tree); err != nil {
					t.Fatalf("Verify rejects veritysetup's tree: %v", err)
				}

				mine := &memWriterAt{}
				if hashOff > 0 {
					mine.WriteAt(make([]byte, hashOff), 0)
				}
				built, err := Build(bytes.NewReader(data), int64(len(data)), mine, hashOff,
					Params{Salt: salt, UUID: uuidBytes}, true)
				if err != nil {
					t.Fatal(err)
				}
				if got, want := hex.EncodeToString(built.RootHash), m[1]; got != want {
					t.Errorf("root hash = %s, want %s (veritysetup's)", got, want)
				}
				// veritysetup may leave the file longer than the tree; what
				// is past the tree must be zero.
				got, want := mine.b, theirs
				if len(want) > len(got) && allZero(want[len(got):]) {
					want = want[:len(got)]
				}
				if !bytes.Equal(got, want) {
					t.Errorf("hash area differs from veritysetup's: %d bytes vs %d, first difference at %d", len(got), len(want), firstDiff(got, want))
				}
				if tree.HashStartBlock != built.HashStartBlock || tree.HashSize != built.HashSize {
					t.Errorf("tree from superblock: start %d size %d, Build: start %d size %d",
						tree.HashStartBlock, tree.HashSize, built.HashStartBlock, built.HashSize)
				}
			})
		}
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// memWriterAt is an io.WriterAt over a growing byte slice.
type memWriterAt struct{ b []byte }

func (m *memWriterAt) WriteAt(p []byte, off int64) (int, error) {
	if end := off + int64(len(p)); end > int64(len(m.b)) {
		m.b = append(m.b, make([]byte, end-int64(len(m.b)))...)
	}
	return copy(m.b[off:], p), nil
}

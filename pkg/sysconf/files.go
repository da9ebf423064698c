package sysconf

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"syscall"

	"github.com/keso-os/keso/pkg/cloudconfig"
	"github.com/keso-os/keso/pkg/phase"
	"github.com/keso-os/keso/pkg/users"
)

// FileWrite is one planned write_files entry.
type FileWrite struct {
	At   string // config path, write_files[i]
	Path string
	Data []byte
	Mode fs.FileMode // permission bits plus setuid/setgid/sticky
	UID  int
	GID  int
}

// DefaultFileMode is the mode of a write_files entry without permissions.
const DefaultFileMode = 0o644

// ParseMode turns an octal string ("0644", "755", "4755") into a FileMode.
func ParseMode(s string) (fs.FileMode, error) {
	if s == "" {
		return DefaultFileMode, nil
	}
	n, err := strconv.ParseUint(s, 8, 32)
	if err != nil || n > 0o7777 {
		return 0, fmt.Errorf("%q is not an octal mode", s)
	}
	return fsMode(uint32(n)), nil
}

// fsMode converts a Unix mode to a FileMode (os.Chmod needs the special
// bits as FileMode flags).
func fsMode(n uint32) fs.FileMode {
	m := fs.FileMode(n & 0o777)
	if n&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if n&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if n&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	return m
}

const modeBits = fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky

// Failure is a config value a planner could not turn into an action.
type Failure struct {
	At  string
	Err error
}

// PlanFiles decodes every write_files entry and resolves its owner through
// db. Entries that cannot be planned are returned as failures.
func PlanFiles(files []cloudconfig.File, db users.DB) ([]FileWrite, []Failure) {
	var out []FileWrite
	var fails []Failure
	for i, f := range files {
		at := fmt.Sprintf("write_files[%d]", i)
		data, err := cloudconfig.DecodeContent(f)
		if err != nil {
			fails = append(fails, Failure{at + ".content", fmt.Errorf("decode %s: %w", f.Path, err)})
			continue
		}
		mode, err := ParseMode(f.Permissions)
		if err != nil {
			fails = append(fails, Failure{at + ".permissions", err})
			continue
		}
		uid, gid, err := db.Owner(f.Owner)
		if err != nil {
			fails = append(fails, Failure{at + ".owner", fmt.Errorf("owner of %s: %w", f.Path, err)})
			continue
		}
		out = append(out, FileWrite{At: at, Path: f.Path, Data: data, Mode: mode, UID: uid, GID: gid})
	}
	return out, fails
}

// Files runs the write_files phase.
func Files(cfg *cloudconfig.Config, fsys FS, rec *phase.Recorder) {
	if len(cfg.WriteFiles) == 0 {
		return
	}
	passwd, err1 := readOptional(fsys, users.PasswdFile)
	group, err2 := readOptional(fsys, users.GroupFile)
	if err := errors.Join(err1, err2); err != nil {
		rec.Fail("", err)
	}
	plan, fails := PlanFiles(cfg.WriteFiles, users.ParseDB(passwd, group))
	for _, f := range fails {
		rec.Fail(f.At, f.Err)
	}
	for _, w := range plan {
		applyFile(fsys, w, rec)
	}
}

func applyFile(fsys FS, w FileWrite, rec *phase.Recorder) {
	detail := fmt.Sprintf("%d bytes, mode %04o, owner %d:%d", len(w.Data), unixMode(w.Mode), w.UID, w.GID)
	old, err := fsys.ReadFile(w.Path)
	var fi fs.FileInfo
	if err == nil {
		fi, err = fsys.Stat(w.Path)
	}
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		rec.Fail(w.At, err)
		return
	case bytes.Equal(old, w.Data) && sameMeta(fi, w):
		return
	case bytes.Equal(old, w.Data):
		if err := setMeta(fsys, w); err != nil {
			rec.Fail(w.At, err)
			return
		}
		rec.Change("chmod", w.Path, fmt.Sprintf("mode %04o, owner %d:%d", unixMode(w.Mode), w.UID, w.GID))
		return
	}
	// The file is written with the permission bits only: setuid and
	// friends are set after chown, which would clear them.
	if err := fsys.WriteFileAtomic(w.Path, w.Data, w.Mode.Perm()); err != nil {
		rec.Fail(w.At, err)
		return
	}
	if err := setMeta(fsys, w); err != nil {
		rec.Fail(w.At, err)
		return
	}
	rec.Change("write", w.Path, detail)
}

func setMeta(fsys FS, w FileWrite) error {
	if err := fsys.Chown(w.Path, w.UID, w.GID); err != nil {
		return err
	}
	return fsys.Chmod(w.Path, w.Mode)
}

func sameMeta(fi fs.FileInfo, w FileWrite) bool {
	if fi.Mode()&modeBits != w.Mode {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && int(st.Uid) == w.UID && int(st.Gid) == w.GID
}

func unixMode(m fs.FileMode) uint32 {
	n := uint32(m.Perm())
	if m&os.ModeSetuid != 0 {
		n |= 0o4000
	}
	if m&os.ModeSetgid != 0 {
		n |= 0o2000
	}
	if m&os.ModeSticky != 0 {
		n |= 0o1000
	}
	return n
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return strconv.Itoa(n) + " " + what + "s"
}

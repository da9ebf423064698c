package rack

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

// Machine is what the server knows of one machine for one boot.
type Machine struct {
	MAC      string // canonical (NormalMAC)
	UUID     string // SMBIOS UUID as iPXE reports it, lower case; may be ""
	Hostname string
	Mode     Mode
	Device   string // install mode: the target disk
	File     string // the file it came from: machines/<mac>.yaml, machines/<uuid>.yaml or default.yaml
	Config   []byte // the config served to the node: the netboot block blanked, templates filled
}

// Settings is a file's netboot: block.
type Settings struct {
	Mode     Mode   `yaml:"mode"`
	Device   string `yaml:"device"`
	Hostname string `yaml:"hostname"`
}

// DefaultFile is the config of a machine without a file of its own.
const DefaultFile = "default.yaml"

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// Lookup finds the machine's file in fsys (machines/<mac>.yaml, then
// machines/<uuid>.yaml, then default.yaml), reads its netboot block and
// fills its templates for arch. It never reads a file named by anything
// but a well-formed MAC or UUID.
func Lookup(fsys fs.FS, mac, uuid, arch string) (Machine, error) {
	mac, err := NormalMAC(mac)
	if err != nil {
		return Machine{}, err
	}
	uuid = strings.ToLower(uuid)
	names := []string{path.Join("machines", mac+".yaml")}
	if uuidRE.MatchString(uuid) {
		names = append(names, path.Join("machines", uuid+".yaml"))
	} else {
		uuid = ""
	}
	names = append(names, DefaultFile)
	for _, name := range names {
		data, err := fs.ReadFile(fsys, name)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return Machine{}, fmt.Errorf("read %s: %w", name, err)
		}
		m, err := parseMachine(data, mac, uuid, arch)
		if err != nil {
			return Machine{}, fmt.Errorf("%s: %w", name, err)
		}
		m.File = name
		return m, nil
	}
	return Machine{}, fmt.Errorf("no machines/%s.yaml and no %s: write a %s for machines without a file of their own", mac, DefaultFile, DefaultFile)
}

// parseMachine reads a machine file's netboot block, blanks it out and
// fills the templates.
func parseMachine(data []byte, mac, uuid, arch string) (Machine, error) {
	m := Machine{MAC: mac, UUID: uuid, Mode: Live}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return m, fmt.Errorf("not YAML: %w", err)
	}
	var s Settings
	if len(doc.Content) == 1 && doc.Content[0].Kind == yaml.MappingNode {
		top := doc.Content[0].Content
		for i := 0; i+1 < len(top); i += 2 {
			if top[i].Value != "netboot" {
				continue
			}
			if err := top[i+1].Decode(&s); err != nil {
				return m, fmt.Errorf("line %d: netboot: %w", top[i].Line, err)
			}
			end := 0 // the last line of the block: up to the next top-level key
			if i+2 < len(top) {
				end = top[i+2].Line - 1
			}
			data = blankLines(data, top[i].Line, end)
		}
	} else if len(doc.Content) > 0 && doc.Content[0].Kind != yaml.MappingNode {
		return m, errors.New("expected a YAML mapping (a cloud-config), like `hostname: rack-a`")
	}
	switch s.Mode {
	case "":
	case Live, Install, Local:
		m.Mode = s.Mode
	default:
		return m, fmt.Errorf("netboot.mode %q: expected live, install or local", s.Mode)
	}
	if m.Mode == Install && !strings.HasPrefix(s.Device, "/dev/") {
		return m, fmt.Errorf("netboot.mode install needs netboot.device, the disk to install to (like /dev/sda); got %q", s.Device)
	}
	m.Device = s.Device
	m.Hostname = s.Hostname
	if m.Hostname == "" {
		m.Hostname = "keso-" + strings.ReplaceAll(mac[9:], "-", "")
	}
	m.Config = Fill(data, map[string]string{"mac": mac, "hostname": m.Hostname, "uuid": uuid, "arch": arch})
	return m, nil
}

// blankLines empties lines from..to (1-based, to 0 meaning the end) and
// keeps their newlines, so every other line keeps its number.
func blankLines(data []byte, from, to int) []byte {
	lines := bytes.SplitAfter(data, []byte("\n"))
	for i := range lines {
		n := i + 1
		if n < from || (to > 0 && n > to) {
			continue
		}
		if bytes.HasSuffix(lines[i], []byte("\n")) {
			lines[i] = []byte("\n")
		} else {
			lines[i] = nil
		}
	}
	return bytes.Join(lines, nil)
}

var templateRE = regexp.MustCompile(`\$?\$\{([A-Za-z_]+)\}`)

// Fill replaces ${name} for each name in vars; $${ stays a literal ${,
// and an unknown ${name} (a shell variable in a script) is left alone.
func Fill(data []byte, vars map[string]string) []byte {
	return templateRE.ReplaceAllFunc(data, func(m []byte) []byte {
		if bytes.HasPrefix(m, []byte("$$")) {
			return m[1:]
		}
		if v, ok := vars[string(m[2:len(m)-1])]; ok {
			return []byte(v)
		}
		return m
	})
}

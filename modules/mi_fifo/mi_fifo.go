// Package mififo is OpenSIPS 3.x's mi_fifo module: the Management
// Interface over a named pipe. A client writes
//
//	:reply_fifo_name:{"jsonrpc":"2.0","method":"ps","id":1}
//
// to the FIFO (fifo_name); sipedge runs the JSON-RPC request through
// runtime/mi (mi.Default) and writes the JSON-RPC response to the FIFO
// reply_dir/reply_fifo_name, which the client created and opened for
// reading. With no reply name ("::{…}") or no id (a notification) nothing
// is written back.
//
// The FIFO belongs to the process, not to a script generation: Sync,
// called whenever a generation goes live, creates it, moves it when
// fifo_name changes and removes it when the script no longer loads
// mi_fifo; Close removes it when sipedge stops.
package mififo

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sipedge/sipedge/modules"
	"github.com/sipedge/sipedge/runtime/mi"
	"github.com/sipedge/sipedge/runtime/value"
)

// Name is the module name.
const Name = "mi_fifo"

// Defaults, as OpenSIPS 3.x has them.
const (
	DefaultFifoName = "/tmp/opensips_fifo"
	DefaultReplyDir = "/tmp/"
	DefaultMode     = 0o660
)

// Tuning.
const (
	// MaxRequest bounds one request (reply name and JSON).
	MaxRequest = 1 << 20
	// CheckInterval is how often the FIFO is checked and recreated when it
	// was removed or replaced (OpenSIPS: 30 s).
	CheckInterval = 30 * time.Second
	replyRetries  = 4
	replyWait     = 80 * time.Millisecond
)

func init() {
	modules.Register(&modules.Info{
		Name: Name,
		Params: []modules.Param{
			{Name: "fifo_name", Kind: modules.ParamStr, Default: value.S(DefaultFifoName)},
			{Name: "fifo_mode", Kind: modules.ParamInt, Default: value.I(DefaultMode)},
			{Name: "fifo_group", Kind: modules.ParamStr},
			{Name: "fifo_user", Kind: modules.ParamStr},
			{Name: "reply_dir", Kind: modules.ParamStr, Default: value.S(DefaultReplyDir)},
			{Name: "pretty_printing", Kind: modules.ParamInt, Default: value.I(0)},
			// Accepted for compatibility: sipedge has no MI tracing (proto_hep)
			// and no 1.x/2.x tree output.
			{Name: "trace_destination", Kind: modules.ParamStr},
			{Name: "trace_bwlist", Kind: modules.ParamStr},
			{Name: "reply_indent", Kind: modules.ParamStr},
		},
		Configure: func(p modules.Params) (func(), error) {
			_, err := ReadConfig(p)
			return nil, err // Sync applies it; Configure only validates
		},
		Shutdown: Close, // remove the FIFO when sipedge stops
	})
	mi.Default.AddProcesses(func() []string {
		if p := Path(); p != "" {
			return []string{"MI FIFO " + p}
		}
		return nil
	})
}

// Config is the FIFO's settings.
type Config struct {
	Path     string
	Mode     os.FileMode
	UID, GID int // -1: leave as created
	ReplyDir string
	Pretty   bool
}

// ReadConfig validates the modparams.
func ReadConfig(p modules.Params) (Config, error) {
	c := Config{Path: strings.TrimSpace(p.Str("fifo_name")), UID: -1, GID: -1,
		ReplyDir: strings.TrimSpace(p.Str("reply_dir")), Pretty: p.Int("pretty_printing") != 0}
	if c.Path == "" {
		return c, errors.New("no fifo configured (fifo_name)")
	}
	mode := p.Int("fifo_mode")
	if mode < 0 || mode > 0o777 {
		return c, fmt.Errorf("fifo_mode %#o is not a permission mode", mode)
	}
	if mode == 0 {
		mode = 0o600 // as OpenSIPS: "cannot specify mi_fifo_mode = 0, forcing it to rw-------"
	}
	c.Mode = os.FileMode(mode)
	if c.ReplyDir == "" {
		return c, errors.New("reply_dir is empty")
	}
	if st, err := os.Stat(c.ReplyDir); err != nil {
		return c, fmt.Errorf("reply_dir: %v", err)
	} else if !st.IsDir() {
		return c, fmt.Errorf("reply_dir %s is not a directory", c.ReplyDir)
	}
	if u := strings.TrimSpace(p.Str("fifo_user")); u != "" {
		uid, gid, err := lookupUser(u)
		if err != nil {
			return c, fmt.Errorf("fifo_user: %v", err)
		}
		c.UID, c.GID = uid, gid
	}
	if g := strings.TrimSpace(p.Str("fifo_group")); g != "" {
		gid, err := lookupGroup(g)
		if err != nil {
			return c, fmt.Errorf("fifo_group: %v", err)
		}
		c.GID = gid
	}
	return c, nil
}

func lookupUser(s string) (int, int, error) {
	if n, err := strconv.Atoi(s); err == nil {
		return n, -1, nil
	}
	u, err := user.Lookup(s)
	if err != nil {
		return 0, 0, err
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return uid, gid, nil
}

func lookupGroup(s string) (int, error) {
	if n, err := strconv.Atoi(s); err == nil {
		return n, nil
	}
	g, err := user.LookupGroup(s)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(g.Gid)
}

// Handler runs one JSON-RPC request (mi.Default implements it).
type Handler interface {
	Handle(body []byte) (mi.Response, bool)
}

// Registry is what requests are dispatched to.
var Registry Handler = mi.Default

// Log receives the server's error messages (sipedge's stderr by default).
var Log = func(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "mi_fifo: "+format+"\n", args...)
}

var srv struct {
	mu  sync.Mutex
	cur *server
}

// Sync makes the FIFO match a live script's modparams (engine.Script.Params;
// a module is loaded when it has an entry). Call it whenever a generation
// goes live.
func Sync(params map[string]modules.Params) error {
	p, loaded := params[Name]
	if !loaded {
		return Close()
	}
	cfg, err := ReadConfig(p)
	if err != nil {
		return err
	}
	return Start(cfg)
}

// Start serves the FIFO with cfg, replacing (and removing) one served with
// another configuration. It is a no-op when cfg is already served.
func Start(cfg Config) error {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if srv.cur != nil && srv.cur.cfg == cfg {
		return nil
	}
	s := &server{cfg: cfg, done: make(chan struct{})}
	if srv.cur != nil && srv.cur.cfg.Path == cfg.Path {
		srv.cur.stop(false) // same file: recreated below
	}
	if err := s.open(); err != nil {
		return err
	}
	if srv.cur != nil {
		srv.cur.stop(srv.cur.cfg.Path != cfg.Path)
	}
	srv.cur = s
	go s.loop()
	go s.watch()
	return nil
}

// Close stops serving and removes the FIFO.
func Close() error {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if srv.cur == nil {
		return nil
	}
	err := srv.cur.stop(true)
	srv.cur = nil
	return err
}

// Path is the FIFO being served ("" when none).
func Path() string {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if srv.cur == nil {
		return ""
	}
	return srv.cur.cfg.Path
}

// server is one FIFO being served.
type server struct {
	cfg  Config
	mu   sync.Mutex
	r, w *os.File // read end, and a write end that keeps it from EOF
	dead bool
	done chan struct{}
}

// open (re)creates the FIFO and opens it.
func (s *server) open() error {
	path := s.cfg.Path
	if st, err := os.Lstat(path); err == nil {
		if st.Mode()&os.ModeNamedPipe == 0 {
			return fmt.Errorf("%s exists and is not a FIFO", path)
		}
		if err := os.Remove(path); err != nil {
			return fmt.Errorf("cannot delete old fifo (%s): %v", path, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("FIFO stat failed: %v", err)
	}
	if err := syscall.Mkfifo(path, uint32(s.cfg.Mode)); err != nil {
		return fmt.Errorf("can't create FIFO %s: %v", path, err)
	}
	if err := os.Chmod(path, s.cfg.Mode); err != nil { // past the umask
		os.Remove(path)
		return fmt.Errorf("can't chmod FIFO %s: %v", path, err)
	}
	if s.cfg.UID != -1 || s.cfg.GID != -1 {
		if err := os.Chown(path, s.cfg.UID, s.cfg.GID); err != nil {
			os.Remove(path)
			return fmt.Errorf("failed to change the owner/group of %s: %v", path, err)
		}
	}
	r, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		os.Remove(path)
		return err
	}
	w, err := os.OpenFile(path, os.O_WRONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		r.Close()
		os.Remove(path)
		return err
	}
	s.mu.Lock()
	s.r, s.w = r, w
	s.mu.Unlock()
	return nil
}

// stop closes the FIFO (the loop ends) and, with remove, deletes the file
// if it is still ours.
func (s *server) stop(remove bool) error {
	s.mu.Lock()
	if s.dead {
		s.mu.Unlock()
		return nil
	}
	s.dead = true
	r, w := s.r, s.w
	s.mu.Unlock()
	close(s.done)
	var err error
	if remove && r != nil {
		if st, e := os.Lstat(s.cfg.Path); e == nil {
			if fst, e2 := r.Stat(); e2 == nil && os.SameFile(st, fst) {
				err = os.Remove(s.cfg.Path)
			}
		}
	}
	if r != nil {
		r.Close()
	}
	if w != nil {
		w.Close()
	}
	return err
}

func (s *server) isDead() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dead
}

// watch recreates the FIFO when it was removed or replaced.
func (s *server) watch() {
	t := time.NewTicker(CheckInterval)
	defer t.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-t.C:
		}
		s.check()
	}
}

// check verifies the FIFO file is still the one opened; if not, the read
// end is closed and the loop reopens it.
func (s *server) check() {
	s.mu.Lock()
	r := s.r
	s.mu.Unlock()
	if r == nil {
		return
	}
	st, err := os.Lstat(s.cfg.Path)
	fst, err2 := r.Stat()
	if err == nil && err2 == nil && os.SameFile(st, fst) && st.Mode()&os.ModeNamedPipe != 0 {
		return
	}
	Log("invalid FIFO file: creating a new one (%s)", s.cfg.Path)
	r.Close() // the loop sees the error and reopens
}

// loop reads requests until the server stops.
func (s *server) loop() {
	for !s.isDead() {
		s.mu.Lock()
		r := s.r
		s.mu.Unlock()
		s.serve(r)
		if s.isDead() {
			return
		}
		s.mu.Lock()
		if s.w != nil {
			s.w.Close()
		}
		s.r, s.w = nil, nil
		s.mu.Unlock()
		for !s.isDead() {
			if err := s.open(); err != nil {
				Log("%v", err)
				select {
				case <-s.done:
					return
				case <-time.After(time.Second):
				}
				continue
			}
			break
		}
	}
}

// serve reads and runs requests from r until it fails or closes.
func (s *server) serve(r io.Reader) {
	var buf []byte
	chunk := make([]byte, 64<<10)
	for {
		n, err := r.Read(chunk)
		if n > 0 {
			buf = append(buf, chunk[:n]...)
			buf = s.process(buf)
			if len(buf) > MaxRequest {
				Log("request too long: dropped")
				buf = buf[:0]
			}
		}
		if err != nil {
			if err == io.EOF {
				continue // cannot happen while we hold a write end
			}
			return
		}
	}
}

// process runs every complete request in buf and returns what is left.
func (s *server) process(buf []byte) []byte {
	for {
		p := bytes.TrimLeft(buf, " \t\r\n")
		if len(p) == 0 {
			return buf[:0]
		}
		if p[0] != ':' {
			Log("command must begin with ':': [%.40s]", p)
			if buf = skipLine(p); len(buf) == 0 {
				return buf
			}
			continue
		}
		sep := bytes.IndexByte(p[1:], ':')
		if sep < 0 {
			return buf // the reply name is not complete yet
		}
		file := string(p[1 : 1+sep])
		rest := p[2+sep:]
		if len(bytes.TrimSpace(rest)) == 0 {
			return buf // no command yet
		}
		dec := json.NewDecoder(bytes.NewReader(rest))
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
				return buf // wait for the rest of the JSON
			}
			Log("cannot parse command: %v", err)
			if buf = skipLine(rest); len(buf) == 0 {
				return buf
			}
			continue
		}
		consumed := len(p) - len(rest) + int(dec.InputOffset())
		s.run(file, raw)
		buf = append(buf[:0], p[consumed:]...)
	}
}

// skipLine drops what precedes the next line (a garbled request); the
// result shares p's memory.
func skipLine(p []byte) []byte {
	if i := bytes.IndexByte(p, '\n'); i >= 0 {
		return p[i+1:]
	}
	return p[:0]
}

// run handles one request and writes the reply, if any is due.
func (s *server) run(file string, req []byte) {
	resp, reply := Registry.Handle(req)
	if file == "" || !reply {
		return
	}
	if strings.ContainsAny(file, "./\\") {
		Log("forbidden reply file name: %s", file)
		return
	}
	var out []byte
	var err error
	if s.cfg.Pretty {
		out, err = json.MarshalIndent(resp, "", "    ")
	} else {
		out, err = json.Marshal(resp)
	}
	if err != nil {
		out, _ = json.Marshal(mi.Response{JSONRPC: "2.0", ID: resp.ID,
			Error: &mi.Error{Code: mi.CodeServerError, Message: "Server error", Data: "cannot encode the result: " + err.Error()}})
	}
	path := filepath.Join(s.cfg.ReplyDir, file)
	if err := writeReply(path, append(out, '\n')); err != nil {
		Log("cannot reply to %s: %v", path, err)
	}
}

// writeReply opens the client's reply FIFO without blocking (a client that
// is not reading gets a few retries, as in OpenSIPS), checks it is a FIFO
// that is neither a symlink nor hard-linked, and writes data.
func writeReply(path string, data []byte) error {
	var fd int
	var err error
	for i := 0; ; i++ {
		fd, err = syscall.Open(path, syscall.O_WRONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
		if err == nil {
			break
		}
		if err != syscall.ENXIO || i >= replyRetries {
			if err == syscall.ENXIO {
				return errors.New("no client reading")
			}
			return err
		}
		time.Sleep(replyWait)
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	var fst syscall.Stat_t
	if err := syscall.Fstat(fd, &fst); err != nil {
		return err
	}
	if fst.Mode&syscall.S_IFMT != syscall.S_IFIFO {
		return errors.New("not a fifo")
	}
	if fst.Nlink > 1 {
		return fmt.Errorf("security: hard-linked %d times", fst.Nlink)
	}
	var lst syscall.Stat_t
	if err := syscall.Lstat(path, &lst); err != nil {
		return err
	}
	if lst.Mode&syscall.S_IFMT == syscall.S_IFLNK {
		return errors.New("security: a soft link")
	}
	if lst.Dev != fst.Dev || lst.Ino != fst.Ino {
		return errors.New("security: inode/dev number differ")
	}
	// blocking writes from here on
	if err := syscall.SetNonblock(fd, false); err != nil {
		return err
	}
	for len(data) > 0 {
		n, err := syscall.Write(fd, data)
		if err != nil {
			if err == syscall.EINTR || err == syscall.EAGAIN {
				continue
			}
			return err
		}
		data = data[n:]
	}
	return nil
}

// Package usrloc is OpenSIPS's user location module: the table of
// registered contacts (bindings) per address-of-record that registrar's
// save() fills and lookup() reads.
//
// Tables live as long as the process (not a script generation), so
// registrations survive a script reload. db_mode selects persistence:
// 0 memory only, 1 write-through (every change written before save()
// replies), 2 write-back (changes flushed by the timer), 3 database only
// (no memory copy). With 1 and 2 a table is loaded from the database when
// first used, so registrations survive a restart.
package usrloc

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sipedge/sipedge/modules"
	"github.com/sipedge/sipedge/runtime/store"
	"github.com/sipedge/sipedge/runtime/value"
)

// Name is the module name.
const Name = "usrloc"

// Mode is a db_mode.
type Mode int

const (
	NoDB         Mode = 0
	WriteThrough Mode = 1
	WriteBack    Mode = 2
	DBOnly       Mode = 3
)

var modeNames = map[string]Mode{
	"single-instance-no-db":             NoDB,
	"single-instance-sql-write-through": WriteThrough,
	"single-instance-sql-write-back":    WriteBack,
	"sql-only":                          DBOnly,
}

type config struct {
	mode      Mode
	db        *store.DB
	useDomain bool
	descTime  bool
	matching  int // 0: contact; 1: contact and Call-ID
	interval  time.Duration
	natBflag  string
	checked   sync.Map // table -> error
}

var cur atomic.Pointer[config]

func init() {
	cur.Store(&config{useDomain: true, interval: 60 * time.Second})
	modules.Register(&modules.Info{
		Name: Name,
		Params: []modules.Param{
			{Name: "db_mode", Kind: modules.ParamInt, Default: value.I(-1)},
			{Name: "working_mode_preset", Kind: modules.ParamStr},
			{Name: "db_url", Kind: modules.ParamStr},
			{Name: "timer_interval", Kind: modules.ParamInt, Default: value.I(60)},
			{Name: "use_domain", Kind: modules.ParamInt, Default: value.I(1)},
			{Name: "desc_time_order", Kind: modules.ParamInt, Default: value.I(0)},
			{Name: "matching_mode", Kind: modules.ParamInt, Default: value.I(0)},
			{Name: "nat_bflag", Kind: modules.ParamStr},
			{Name: "hash_size", Kind: modules.ParamInt, Default: value.I(9)},
		},
		MI:        miCommands(),
		Configure: configure,
		Shutdown:  Flush,
	})
}

func configure(p modules.Params) (func(), error) {
	c := &config{
		useDomain: p.Int("use_domain") != 0,
		descTime:  p.Int("desc_time_order") != 0,
		matching:  p.Int("matching_mode"),
		natBflag:  p.Str("nat_bflag"),
	}
	mode := Mode(p.Int("db_mode"))
	if preset := strings.TrimSpace(p.Str("working_mode_preset")); preset != "" {
		m, ok := modeNames[preset]
		if !ok {
			return nil, fmt.Errorf("working_mode_preset %q is not supported (sipedge has single-instance-no-db, single-instance-sql-write-through, single-instance-sql-write-back and sql-only)", preset)
		}
		mode = m
	}
	if mode == -1 {
		mode = NoDB
	}
	if mode < NoDB || mode > DBOnly {
		return nil, fmt.Errorf("db_mode %d: want 0 (memory), 1 (write-through), 2 (write-back) or 3 (database only)", mode)
	}
	c.mode = mode
	if c.matching != 0 && c.matching != 1 {
		return nil, fmt.Errorf("matching_mode %d: want 0 (contact) or 1 (contact and Call-ID)", c.matching)
	}
	iv := p.Int("timer_interval")
	if iv <= 0 {
		return nil, errors.New("timer_interval must be a positive number of seconds")
	}
	c.interval = time.Duration(iv) * time.Second
	if hs := p.Int("hash_size"); hs < 1 || hs > 16 {
		return nil, fmt.Errorf("hash_size %d: want 1..16", hs)
	}
	if mode != NoDB {
		u := p.Str("db_url")
		if u == "" {
			return nil, fmt.Errorf(`db_mode %d needs a database: set modparam("usrloc", "db_url", "sqlite:///path/to/sipedge.db")`, mode)
		}
		db, err := store.Open(u)
		if err != nil {
			return nil, err
		}
		c.db = db
	}
	return func() {
		cur.Store(c)
		startTimer()
	}, nil
}

// DBMode is the db_mode in force.
func DBMode() Mode { return cur.Load().mode }

// UseDomain tells whether AORs are user@domain (use_domain) or user.
func UseDomain() bool { return cur.Load().useDomain }

// MatchCallID tells whether contacts match on Call-ID too (matching_mode 1).
func MatchCallID() bool { return cur.Load().matching == 1 }

// ---- timer ----

var timerOnce sync.Once

// startTimer runs the expiry/flush timer for the rest of the process.
func startTimer() {
	timerOnce.Do(func() {
		go func() {
			for {
				time.Sleep(cur.Load().interval)
				Timer()
			}
		}()
	})
}

// TimerErrors counts failed timer runs (database errors), for tests and stats.
var TimerErrors atomic.Int64

// Timer runs one timer pass: flush pending writes (db_mode 2), then drop
// expired bindings from memory and from the database.
func Timer() error {
	c := cur.Load()
	now := clock()
	var errs []error
	for _, d := range Domains() {
		if err := d.flush(c); err != nil {
			errs = append(errs, err)
		}
		if c.mode != DBOnly {
			d.expire(now)
		}
		if c.mode != NoDB && c.db != nil {
			if _, err := c.dbDeleteExpired(d.Name, now); err != nil {
				errs = append(errs, err)
			}
		}
	}
	err := errors.Join(errs...)
	if err != nil {
		TimerErrors.Add(1)
	}
	return err
}

// Flush writes every pending change now (db_mode 2); call it before the
// process exits so write-back registrations are not lost.
func Flush() error {
	c := cur.Load()
	var errs []error
	for _, d := range Domains() {
		errs = append(errs, d.flush(c))
	}
	return errors.Join(errs...)
}

package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"sync"
	"sync/atomic"
	"time"
)

// A nonce is base64url(expires | index | qop | alg | mac): the expiry (unix
// seconds), a process-unique index for replay tracking, the qop and
// algorithm the challenge offered, and an HMAC-SHA256 (truncated to 128
// bits) over them with the secret. The server keeps no state per
// challenge; it keeps the indexes that were used, until they expire.

const (
	nonceBody = 8 + 8 + 1 + 1
	nonceMAC  = 16
	nonceRaw  = nonceBody + nonceMAC
)

// QOP bits a challenge offers.
const (
	qopAuth    = 1
	qopAuthInt = 2
)

type nonceData struct {
	expires int64
	index   uint64
	qop     uint8
	alg     Alg
}

// processSecret keys nonces when the script sets no "secret": random per
// process, so nonces survive script reloads but not restarts.
var processSecret = func() []byte {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic("auth: no randomness for the nonce secret: " + err.Error())
	}
	return b
}()

// nonceIndex starts at the clock so a restart with a fixed secret does not
// reissue indexes that are still tracked as used... by the previous process.
var nonceIndex atomic.Uint64

func init() { nonceIndex.Store(uint64(time.Now().UnixNano())) }

func makeNonce(key []byte, d nonceData) string {
	var raw [nonceRaw]byte
	binary.BigEndian.PutUint64(raw[0:], uint64(d.expires))
	binary.BigEndian.PutUint64(raw[8:], d.index)
	raw[16] = d.qop
	raw[17] = byte(d.alg)
	mac := hmac.New(sha256.New, key)
	mac.Write(raw[:nonceBody])
	copy(raw[nonceBody:], mac.Sum(nil))
	return base64.RawURLEncoding.EncodeToString(raw[:])
}

// parseNonce verifies a nonce's MAC and decodes it.
func parseNonce(key []byte, s string) (nonceData, bool) {
	var raw [nonceRaw]byte
	if base64.RawURLEncoding.DecodedLen(len(s)) != nonceRaw {
		return nonceData{}, false
	}
	if n, err := base64.RawURLEncoding.Decode(raw[:], []byte(s)); err != nil || n != nonceRaw {
		return nonceData{}, false
	}
	mac := hmac.New(sha256.New, key)
	mac.Write(raw[:nonceBody])
	if !hmac.Equal(mac.Sum(nil)[:nonceMAC], raw[nonceBody:]) {
		return nonceData{}, false
	}
	d := nonceData{
		expires: int64(binary.BigEndian.Uint64(raw[0:])),
		index:   binary.BigEndian.Uint64(raw[8:]),
		qop:     raw[16],
		alg:     Alg(raw[17]),
	}
	if d.alg >= numAlgs || d.qop > qopAuth|qopAuthInt {
		return nonceData{}, false
	}
	return d, true
}

// usedNonces remembers, per nonce index, the highest nc accepted (0 when
// the nonce was used without qop), so a response is never accepted twice:
// without qop a nonce is single-use; with qop each use needs a higher nc.
type usedNonces struct {
	shards [32]struct {
		mu  sync.Mutex
		m   map[uint64]usedEntry
		ops int
	}
}

type usedEntry struct {
	expires int64
	nc      uint32
}

var used usedNonces

// use records one use and reports whether it is fresh.
func (u *usedNonces) use(index uint64, expires int64, nc uint32, hasNC bool, now int64) bool {
	sh := &u.shards[index%uint64(len(u.shards))]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.m == nil {
		sh.m = map[uint64]usedEntry{}
	}
	if e, ok := sh.m[index]; ok {
		if !hasNC || nc <= e.nc {
			return false
		}
		e.nc = nc
		sh.m[index] = e
		return true
	}
	sh.m[index] = usedEntry{expires: expires, nc: nc}
	if sh.ops++; sh.ops >= 512 {
		sh.ops = 0
		for k, e := range sh.m {
			if e.expires < now {
				delete(sh.m, k)
			}
		}
	}
	return true
}

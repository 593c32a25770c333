package acc

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"time"

	"github.com/sipedge/sipedge/modules/tm"
	"github.com/sipedge/sipedge/runtime/msgctx"
	"github.com/sipedge/sipedge/runtime/store"
)

// Database rows are written by one goroutine, in order, batched in
// transactions, so the SIP path never waits for SQLite (a CDR is queued in
// the goroutine that ends the call and written moments later). Flush waits
// for everything queued so far; the module's Shutdown hook flushes.

type job struct {
	db    *store.DB
	query string
	args  []any
	done  chan struct{} // a flush marker when set
}

const queueLen = 1 << 16

var (
	queueOnce sync.Once
	queue     chan job
)

func startWriter() {
	queueOnce.Do(func() {
		queue = make(chan job, queueLen)
		go writer()
	})
}

// enqueue queues one insert. It blocks only when the queue is full (the
// database is far behind): records are never dropped.
func enqueue(db *store.DB, query string, args []any) {
	startWriter()
	queue <- job{db: db, query: query, args: args}
}

// Flush waits until every record queued before the call is written.
func Flush() {
	startWriter()
	done := make(chan struct{})
	queue <- job{done: done}
	<-done
}

func writer() {
	for {
		first := <-queue
		batch := []job{first}
	drain:
		for len(batch) < 256 {
			select {
			case j := <-queue:
				batch = append(batch, j)
			default:
				break drain
			}
		}
		writeBatch(batch)
	}
}

// writeBatch writes consecutive jobs of the same database in one
// transaction; a failed batch is retried row by row so one bad row (a
// missing extra column) does not lose the others.
func writeBatch(batch []job) {
	for i := 0; i < len(batch); {
		j := batch[i]
		if j.done != nil {
			close(j.done)
			i++
			continue
		}
		k := i
		for k < len(batch) && batch[k].done == nil && batch[k].db == j.db {
			k++
		}
		run := batch[i:k]
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := j.db.Tx(ctx, func(tx *sql.Tx) error {
			for _, r := range run {
				if _, err := tx.ExecContext(ctx, r.query, r.args...); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil && len(run) > 1 {
			for _, r := range run {
				if _, err := r.db.Exec(ctx, r.query, r.args...); err != nil {
					logErr(r, err)
				}
			}
		} else if err != nil {
			logErr(j, err)
		}
		cancel()
		i = k
	}
}

func logErr(j job, err error) {
	tm.Log(msgctx.LErr, Name, fmt.Sprintf("failed to insert into database %s (%s): %v", j.db.Path, j.query, err))
}

package pgready

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// watchFor runs a cheap probe every WatchInterval while a pause lasts and
// signals wake once a full attempt can get beyond level:
//   - below tcp: a plain dial of the resolved addresses (resolved once, so a
//     DNS server is not asked at this rate); a refused dial costs
//     microseconds and leaves no trace in the server log;
//   - at auth (target database missing): one connection to the maintenance
//     database, polling pg_database for the target's name.
//
// Other levels have no cheap probe (a failed authentication costs the same
// as an attempt and logs a FATAL line on the server), so they rely on the
// backoff alone. Any failure of the watch itself just ends it.
func (w *waiter) watchFor(ctx context.Context, level Level, wake chan<- struct{}) {
	signal := func() {
		select {
		case wake <- struct{}{}:
		default:
		}
	}
	switch level {
	case LevelNone:
		var errs []error
		addrs := addresses(ctx, &w.cfg.Config, &errs)
		if len(addrs) == 0 {
			return
		}
		w.poll(ctx, func(ctx context.Context) bool {
			for _, a := range addrs {
				dctx, cancel := context.WithTimeout(ctx, w.o.WatchInterval)
				c, err := w.cfg.DialFunc(dctx, a.network, a.address)
				cancel()
				if err == nil {
					_ = c.Close()
					return true
				}
			}
			return false
		}, signal)
	case LevelAuth:
		if w.cfg.Database == "" || w.cfg.Database == w.o.MaintenanceDatabase {
			return
		}
		if w.maint != nil && w.maint.IsClosed() {
			w.maint = nil
		}
		if w.maint == nil && w.maintRefused {
			return // tried once in this Wait: no extra failing connection (and server log line) per pause
		}
		if w.maint == nil {
			cfg := w.cfg.Copy()
			cfg.Database = w.o.MaintenanceDatabase
			cfg.DefaultQueryExecMode = pgx.QueryExecModeExec
			cctx, cancel := context.WithTimeout(ctx, w.o.AttemptTimeout)
			conn, err := pgx.ConnectConfig(cctx, cfg)
			cancel()
			if err != nil {
				if ctx.Err() == nil {
					w.maintRefused = true // e.g. no CONNECT on the maintenance database: backoff only
				}
				return
			}
			w.maint = conn
		}
		w.poll(ctx, func(ctx context.Context) bool {
			var exists bool
			err := w.maint.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", w.cfg.Database).Scan(&exists)
			if err != nil {
				if ctx.Err() == nil {
					w.closeMaint()
				}
				return ctx.Err() == nil // let a full attempt tell what changed
			}
			return exists
		}, signal)
	}
}

// poll runs ready every WatchInterval (real time) until it returns true or
// ctx ends.
func (w *waiter) poll(ctx context.Context, ready func(context.Context) bool, signal func()) {
	t := time.NewTicker(w.o.WatchInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if ready(ctx) {
				signal()
				return
			}
		}
	}
}

// closeMaint closes the watch's maintenance connection, if any.
func (w *waiter) closeMaint() {
	if w.maint != nil {
		closeConn(w.maint)
		w.maint = nil
	}
}

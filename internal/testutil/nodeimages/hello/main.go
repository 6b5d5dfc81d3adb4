// Command hello is the web server of the example module's test image
// (examples/charts/hello-module on the real node): it listens on $ADDR
// (default :8080) and answers / with the database, user and server version
// it reaches through libpq's PG* environment, so a 200 proves that the
// module's connection Secret and database work from inside a pod. Any
// database error is a 503 with the error, logged on stderr.
package main

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

func main() {
	addr := os.Getenv("ADDR")
	if addr == "" {
		addr = ":8080"
	}
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, "")
		if err != nil {
			log.Printf("connect: %v", err)
			http.Error(w, "connect: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		defer conn.Close(context.Background())
		var db, user, version string
		if err := conn.QueryRow(ctx, "SELECT current_database(), current_user, current_setting('server_version')").Scan(&db, &user, &version); err != nil {
			log.Printf("query: %v", err)
			http.Error(w, "query: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintf(w, "hello from database %s as %s (PostgreSQL %s)\n", db, user, version)
	})
	srv := &http.Server{Addr: addr, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
		<-sig
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}()
	log.Printf("listening on %s", addr)
	if err := srv.ListenAndServe(); err != nil && err != http.ErrServerClosed {
		log.Fatal(err)
	}
}

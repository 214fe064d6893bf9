// gosubscriber: N O-Cloud event subscribers in one process, as consumers are
// usually written (Go net/http, one server per port), for events-bench. Each
// listens on 127.0.0.1:0 and answers every POST with 204; an event whose
// first value is an integer (the bench's sequence number) is recorded with
// its arrival time. A control server reports them:
//
//	GET /count     number of events recorded since the last /receipts
//	GET /receipts  "<sequence> <unix nanoseconds>" lines, then forgets them
//
// Prints one line, "control=<port> subscribers=<port>,<port>,...", then
// serves until it is killed (the bench starts it with a parent-death signal).
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

type event struct {
	Data struct {
		Values []struct {
			Value string `json:"value"`
		} `json:"values"`
	} `json:"data"`
}

type receipts struct {
	mu    sync.Mutex
	lines []byte
	count int
}

func (r *receipts) add(seq int64, at time.Time) {
	r.mu.Lock()
	r.lines = strconv.AppendInt(r.lines, seq, 10)
	r.lines = append(r.lines, ' ')
	r.lines = strconv.AppendInt(r.lines, at.UnixNano(), 10)
	r.lines = append(r.lines, '\n')
	r.count++
	r.mu.Unlock()
}

func (r *receipts) take() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.lines
	r.lines = nil
	r.count = 0
	return out
}

func (r *receipts) size() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.count
}

func listen() (net.Listener, int) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "gosubscriber:", err)
		os.Exit(1)
	}
	return l, l.Addr().(*net.TCPAddr).Port
}

func main() {
	n := flag.Int("n", 100, "subscribers (one port each)")
	flag.Parse()

	var got receipts
	subscriber := http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		at := time.Now()
		var e event
		body, err := io.ReadAll(req.Body)
		if err == nil && json.Unmarshal(body, &e) == nil && len(e.Data.Values) > 0 {
			if seq, err := strconv.ParseInt(e.Data.Values[0].Value, 10, 64); err == nil {
				got.add(seq, at)
			}
		}
		w.WriteHeader(http.StatusNoContent)
	})
	ports := make([]string, *n)
	for i := range ports {
		l, port := listen()
		ports[i] = strconv.Itoa(port)
		go http.Serve(l, subscriber)
	}

	control := http.NewServeMux()
	control.HandleFunc("/count", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, got.size())
	})
	control.HandleFunc("/receipts", func(w http.ResponseWriter, _ *http.Request) {
		w.Write(got.take())
	})
	l, port := listen()
	go http.Serve(l, control)

	fmt.Printf("control=%d subscribers=%s\n", port, strings.Join(ports, ","))
	select {}
}

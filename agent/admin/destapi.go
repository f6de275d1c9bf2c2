package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/metricsrouter/router/agent/config"
)

// The runtime destination API of Polymur's gateway ([agent] api_addr): one
// line command per TCP connection, answered, then the connection closes:
//
//	getdest [id]                   JSON {"active":[...],"registered":{"dest":"RFC3339 time"}}, indented
//	putdest ip:port[:inst] [id]    add a destination to distributor id: "Registered destination: ..."
//	deldest ip:port[:inst] [id]    remove one: "Unregistered destination: ..."
//
// id may be left out when the configuration has one distributor. A change
// has the effect of editing the file and reloading (ring rebuilt
// atomically, queues of the other destinations kept) and lasts until the
// next reload. The same is served over HTTP on api_addr (control.go):
// GET /api/destinations[?output=id], PUT and DELETE
// /api/destinations/<ip:port[:inst]>[?output=id]. stats_addr serves the GET
// only. Every change is logged with the client's address.

type destAPI struct {
	r          Router
	log        zerolog.Logger
	mu         sync.Mutex
	registered map[string]map[string]time.Time // output id -> dest -> since
}

func newDestAPI(r Router, log zerolog.Logger) *destAPI {
	d := &destAPI{r: r, log: log, registered: map[string]map[string]time.Time{}}
	now := time.Now()
	for _, id := range r.DistributorIDs() {
		dests, _ := r.Destinations(id)
		m := map[string]time.Time{}
		for _, x := range dests {
			m[x] = now
		}
		d.registered[id] = m
	}
	return d
}

func (d *destAPI) resolve(id string) (string, error) {
	ids := d.r.DistributorIDs()
	if id == "" {
		if len(ids) == 1 {
			return ids[0], nil
		}
		return "", fmt.Errorf("name the output: one of %s", strings.Join(ids, ", "))
	}
	if !slices.Contains(ids, id) {
		return "", fmt.Errorf("%q: %w", id, ErrNoSuchOutput)
	}
	return id, nil
}

type destState struct {
	Active     []string             `json:"active"`
	Registered map[string]time.Time `json:"registered"`
}

func (d *destAPI) get(id string) (destState, error) {
	id, err := d.resolve(id)
	if err != nil {
		return destState{}, err
	}
	dests, err := d.r.Destinations(id)
	if err != nil {
		return destState{}, err
	}
	st := destState{Active: []string{}, Registered: map[string]time.Time{}}
	up := map[string]bool{}
	for _, o := range d.r.Outputs() {
		up[o.Spec] = o.Healthy
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, x := range dests {
		if up[x] {
			st.Active = append(st.Active, x)
		}
		t, ok := d.registered[id][x]
		if !ok {
			t = time.Now()
		}
		st.Registered[x] = t
	}
	return st, nil
}

func (d *destAPI) change(id, dest string, add bool, remote string) error {
	if _, _, _, err := config.ParseDestination(dest); err != nil {
		return err
	}
	id, err := d.resolve(id)
	if err != nil {
		return err
	}
	dests, err := d.r.Destinations(id)
	if err != nil {
		return err
	}
	has := slices.Contains(dests, dest)
	switch {
	case add && has:
		return nil
	case add:
		dests = append(dests, dest)
	case !has:
		return fmt.Errorf("%s is not a destination of %s", dest, id)
	default:
		dests = slices.DeleteFunc(dests, func(x string) bool { return x == dest })
	}
	if err := d.r.SetDestinations(id, dests); err != nil {
		return err
	}
	verb := "destination removed"
	if add {
		verb = "destination added"
	}
	d.log.Info().Str("id", id).Str("addr", dest).Str("remote", remote).Msg(verb)
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.registered[id] == nil {
		d.registered[id] = map[string]time.Time{}
	}
	if add {
		d.registered[id][dest] = time.Now()
	} else {
		delete(d.registered[id], dest)
	}
	return nil
}

// command answers one line of the TCP API from remote, in the words and
// shapes of Polymur's api package: getdest's JSON indented by one space,
// "Registered destination: X", "Unregistered destination: X", "Must
// provide destination", "Destination X not valid", "Not a command: X".
// What Polymur has no word for (an output to name, a destination that is
// not there) answers "error: ...".
func (d *destAPI) command(line, remote string) string {
	f := strings.Fields(line)
	if len(f) == 0 {
		return "Not a command: \n"
	}
	id := ""
	if len(f) > 2 {
		id = f[2]
	}
	switch f[0] {
	case "getdest":
		if len(f) > 1 {
			id = f[1]
		}
		st, err := d.get(id)
		if err != nil {
			return "error: " + err.Error() + "\n"
		}
		b, _ := json.MarshalIndent(st, "", " ")
		return string(b) + "\n"
	case "putdest", "deldest":
		if len(f) < 2 {
			return "Must provide destination\n"
		}
		if _, _, _, err := config.ParseDestination(f[1]); err != nil {
			why := strings.TrimPrefix(err.Error(), strconv.Quote(f[1])+": ")
			return "Destination " + f[1] + " not valid: " + why + "\n"
		}
		if err := d.change(id, f[1], f[0] == "putdest", remote); err != nil {
			return "error: " + err.Error() + "\n"
		}
		if f[0] == "putdest" {
			return "Registered destination: " + f[1] + "\n"
		}
		return "Unregistered destination: " + f[1] + "\n"
	}
	return "Not a command: " + f[0] + "\n"
}

// handleReadOnly serves GET /api/destinations on the stats server, and
// refuses changes (they are api_addr's).
func (d *destAPI) handleReadOnly(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		d.handleHTTP(w, r)
		return
	}
	w.Header().Set("Allow", "GET, HEAD")
	http.Error(w, errReadOnly.Error(), http.StatusMethodNotAllowed)
}

// handleHTTP serves /api/destinations on api_addr (after control's checks).
func (d *destAPI) handleHTTP(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("output")
	dest := strings.TrimPrefix(strings.TrimPrefix(r.URL.Path, "/api/destinations"), "/")
	var err error
	switch {
	case r.Method == http.MethodGet && dest == "":
		var st destState
		if st, err = d.get(id); err == nil {
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(st)
			return
		}
	case r.Method == http.MethodPut && dest != "":
		err = d.change(id, dest, true, r.RemoteAddr)
	case r.Method == http.MethodDelete && dest != "":
		err = d.change(id, dest, false, r.RemoteAddr)
	default:
		http.Error(w, "GET /api/destinations, PUT or DELETE /api/destinations/<ip:port[:instance]>", http.StatusMethodNotAllowed)
		return
	}
	if err != nil {
		code := http.StatusBadRequest
		if errors.Is(err, ErrNoSuchOutput) {
			code = http.StatusNotFound
		}
		http.Error(w, err.Error(), code)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

package client

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"lukechampine.com/blake3"
)

// mpServer fakes the multipart protocol: uploads of parts of partSize bytes, stored by
// number on a fake object store.
type mpServer struct {
	api, store *httptest.Server
	partSize   int64

	mu       sync.Mutex
	declared NewUpload
	uploads  int            // POST /v1/files
	parts    map[int][]byte // stored parts of the current upload
	partPuts int
	status   string   // of the current upload
	cancels  []string // upload ids cancelled (DELETE /v1/uploads/{id})
}

func newMPServer(t *testing.T, partSize int64) *mpServer {
	s := &mpServer{partSize: partSize, parts: map[int][]byte{}}
	s.store = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("partNumber"))
		b := new(bytes.Buffer)
		_, _ = b.ReadFrom(r.Body)
		s.mu.Lock()
		defer s.mu.Unlock()
		if r.Method != http.MethodPut || n < 1 || int64(b.Len()) != r.ContentLength {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		s.parts[n] = b.Bytes()
		s.partPuts++
	}))
	s.api = httptest.NewServer(http.HandlerFunc(s.serveAPI))
	t.Cleanup(s.api.Close)
	t.Cleanup(s.store.Close)
	return s
}

func (s *mpServer) plan() Multipart {
	return Multipart{PartSize: s.partSize, Parts: int(max(1, (s.declared.Size+s.partSize-1)/s.partSize))}
}

func (s *mpServer) serveAPI(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := fmt.Sprintf("00000000-0000-4000-8000-%012d", s.uploads)
	reply := func(status int, v any) {
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(v)
	}
	switch {
	case r.URL.Path == "/v1/files":
		_ = json.NewDecoder(r.Body).Decode(&s.declared)
		s.uploads++
		s.parts, s.status = map[int][]byte{}, "pending"
		id = fmt.Sprintf("00000000-0000-4000-8000-%012d", s.uploads)
		plan := s.plan()
		reply(http.StatusCreated, Upload{ID: id, Path: s.declared.Path, Size: s.declared.Size, BLAKE3: s.declared.BLAKE3, Multipart: &plan})
	case r.URL.Path == "/v1/uploads/"+id && r.Method == http.MethodGet:
		plan := s.plan()
		st := UploadState{ID: id, Path: s.declared.Path, Size: s.declared.Size, BLAKE3: s.declared.BLAKE3, Status: s.status, Multipart: &plan, Parts: []Part{}}
		for n := 1; n <= plan.Parts; n++ {
			if b, ok := s.parts[n]; ok {
				st.Parts = append(st.Parts, Part{Number: n, Size: int64(len(b)), ETag: "e"})
			}
		}
		reply(http.StatusOK, st)
	case r.URL.Path == "/v1/uploads/"+id && r.Method == http.MethodDelete:
		s.cancels = append(s.cancels, id)
		s.status = "cancelled"
		w.WriteHeader(http.StatusNoContent)
	case r.URL.Path == "/v1/uploads/"+id+"/parts":
		var in struct {
			PartNumbers []int `json:"part_numbers"`
		}
		_ = json.NewDecoder(r.Body).Decode(&in)
		var out struct {
			Parts []PartUpload `json:"parts"`
		}
		for _, n := range in.PartNumbers {
			out.Parts = append(out.Parts, PartUpload{Number: n, Size: s.plan().partSize(n, s.declared.Size),
				Upload: Presigned{Method: "PUT", URL: fmt.Sprintf("%s/staging?partNumber=%d", s.store.URL, n)}})
		}
		reply(http.StatusOK, out)
	case r.URL.Path == "/v1/files/commit":
		var all []byte
		for n := 1; n <= s.plan().Parts; n++ {
			all = append(all, s.parts[n]...)
		}
		sum := blake3.Sum256(all)
		if hex.EncodeToString(sum[:]) != s.declared.BLAKE3 {
			reply(http.StatusConflict, Error{Code: CodeUploadIncomplete, Message: "parts missing"})
			return
		}
		s.status = "committed"
		reply(http.StatusCreated, CommitResult{Node: Node{ID: "n1", Path: s.declared.Path}, Version: Version{Size: int64(len(all)), BLAKE3: s.declared.BLAKE3}})
	default:
		reply(http.StatusNotFound, Error{Code: CodeNotFound, Message: "upload not found"})
	}
}

// memResume is a ResumeStore in memory.
type memResume struct{ rec *ResumeRecord }

func (m *memResume) Load() (*ResumeRecord, error) { return m.rec, nil }
func (m *memResume) Save(r ResumeRecord) error    { m.rec = &r; return nil }
func (m *memResume) Clear() error                 { m.rec = nil; return nil }

var errInterrupted = errors.New("interrupted")

// stopAfter is an AfterPart hook that interrupts the upload after n parts.
func stopAfter(n int) func(int) error {
	sent := 0
	return func(int) error {
		if sent++; sent >= n {
			return errInterrupted
		}
		return nil
	}
}

func TestMultipartResume(t *testing.T) {
	content := bytes.Repeat([]byte("0123456789abcdef"), 1000) // 16,000 bytes: parts of 5000, 3 full + 1000
	tests := []struct {
		name string
		// arrange runs before the second Upload call.
		arrange     func(s *mpServer)
		wantUploads int // POST /v1/files in all
		wantSecond  int // part PUTs of the second call
		wantResumed bool
		wantNotice  string
		wantCancels []string // uploads cancelled
	}{
		{name: "resumes the missing parts", arrange: func(*mpServer) {}, wantUploads: 1, wantSecond: 2, wantResumed: true, wantNotice: "2 of 4 parts already uploaded"},
		{name: "expired upload starts over", arrange: func(s *mpServer) { s.status = "expired" }, wantUploads: 2, wantSecond: 4, wantNotice: "cannot be resumed (it is expired): starting over"},
		{name: "unknown upload starts over", arrange: func(s *mpServer) { s.uploads = 7 }, wantUploads: 8, wantSecond: 4, wantNotice: "no longer known"},
		{name: "pending upload of another path is cancelled, starts over", arrange: func(s *mpServer) { s.declared.Path = "/other.bin" },
			wantUploads: 2, wantSecond: 4, wantNotice: "cannot be resumed (it was for another path or content): starting over",
			wantCancels: []string{"00000000-0000-4000-8000-000000000001"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newMPServer(t, 5000)
			c, _ := New(s.api.URL, Options{APIToken: "tok"})
			ctx := context.Background()
			rs := &memResume{}
			_, err := c.Upload(ctx, "/big.bin", opener(content), UploadOptions{Resume: rs, AfterPart: stopAfter(2)})
			if !errors.Is(err, errInterrupted) || rs.rec == nil || s.partPuts != 2 {
				t.Fatalf("interrupted upload: %v, record %+v, %d part PUTs", err, rs.rec, s.partPuts)
			}
			tt.arrange(s)
			s.partPuts = 0
			var notices []string
			var phases []string
			var stats UploadStats
			res, err := c.Upload(ctx, "/big.bin", opener(content), UploadOptions{Resume: rs, Stats: &stats,
				Notice: func(m string) { notices = append(notices, m) },
				Progress: func(phase string, _, _ int64) {
					if len(phases) == 0 || phases[len(phases)-1] != phase {
						phases = append(phases, phase)
					}
				}})
			if err != nil || res.Version.Size != int64(len(content)) {
				t.Fatalf("second upload: %+v, %v", res, err)
			}
			if s.partPuts != tt.wantSecond || s.uploads != tt.wantUploads || stats.Resumed != tt.wantResumed || stats.PartsSent != tt.wantSecond {
				t.Errorf("%d part PUTs, %d uploads, stats %+v; want %d PUTs, %d uploads, resumed %v", s.partPuts, s.uploads, stats, tt.wantSecond, tt.wantUploads, tt.wantResumed)
			}
			if tt.wantResumed && strings.Join(phases, ",") != "upload" {
				t.Errorf("phases %v: a resumed upload does not hash first", phases)
			}
			if len(notices) != 1 || !strings.Contains(notices[0], tt.wantNotice) {
				t.Errorf("notices %q, want %q", notices, tt.wantNotice)
			}
			if rs.rec != nil {
				t.Errorf("record %+v kept after the commit", rs.rec)
			}
			if fmt.Sprint(s.cancels) != fmt.Sprint(tt.wantCancels) {
				t.Errorf("cancelled uploads %v, want %v", s.cancels, tt.wantCancels)
			}
		})
	}
}

// TestMultipartChanged: content that changes under a multipart upload (fresh or resumed) is
// not committed; the record is cleared and the upload cancelled, not left pending.
func TestMultipartChanged(t *testing.T) {
	content := bytes.Repeat([]byte("0123456789abcdef"), 1000)
	changed := bytes.Repeat([]byte("fedcba9876543210"), 1000) // same size
	tests := []struct {
		name string
		// interrupt: a first Upload of content is interrupted after 2 parts; the next one
		// reads changed content and resumes.
		interrupt bool
	}{
		{"changed after the hash pass", false},
		{"changed before a resume", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newMPServer(t, 5000)
			c, _ := New(s.api.URL, Options{APIToken: "tok"})
			ctx := context.Background()
			rs := &memResume{}
			if tt.interrupt {
				if _, err := c.Upload(ctx, "/big.bin", opener(content), UploadOptions{Resume: rs, AfterPart: stopAfter(2)}); !errors.Is(err, errInterrupted) {
					t.Fatalf("interrupted upload: %v", err)
				}
			}
			calls := 0
			open := func() (io.ReadCloser, error) {
				if calls++; calls == 1 && !tt.interrupt {
					return opener(content)() // the hash pass
				}
				return opener(changed)()
			}
			var stats UploadStats
			if _, err := c.Upload(ctx, "/big.bin", open, UploadOptions{Resume: rs, Stats: &stats}); !errors.Is(err, ErrChanged) {
				t.Fatalf("err = %v, want ErrChanged", err)
			}
			if stats.Resumed != tt.interrupt {
				t.Errorf("resumed %v, want %v", stats.Resumed, tt.interrupt)
			}
			if rs.rec != nil {
				t.Errorf("record %+v kept", rs.rec)
			}
			if want := []string{"00000000-0000-4000-8000-000000000001"}; fmt.Sprint(s.cancels) != fmt.Sprint(want) || s.status != "cancelled" {
				t.Errorf("cancelled uploads %v (status %s), want %v", s.cancels, s.status, want)
			}
		})
	}
}

// TestMultipartWithoutResume: a multipart upload without a ResumeStore sends every part.
func TestMultipartWithoutResume(t *testing.T) {
	s := newMPServer(t, 5000)
	c, _ := New(s.api.URL, Options{APIToken: "tok"})
	content := bytes.Repeat([]byte("x"), 10000)
	var stats UploadStats
	if _, err := c.Upload(context.Background(), "/b.bin", opener(content), UploadOptions{Stats: &stats}); err != nil {
		t.Fatal(err)
	}
	if s.partPuts != 2 || !stats.Multipart || stats.PartsSent != 2 {
		t.Errorf("%d part PUTs, stats %+v; want 2", s.partPuts, stats)
	}
}

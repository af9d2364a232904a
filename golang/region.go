package ferry

/*
#include "region_go.h"
*/
import "C"

import (
	"context"
	"errors"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// RegionConfig says how a region is made. A zero field takes its default.
type RegionConfig struct {
	// Ring is the number of message-ring entries per direction: a power of two, 2..65536
	// (default 1024).
	Ring uint64
	// Slots is how many buffers each process can have allocated at once (default 4096).
	Slots uint64
	// Arena is the size in bytes of each process's arena, rounded up to 4 KiB (default 64 MiB).
	// Pages take memory only once written.
	Arena uint64
	// Mode is the permission bits of a named region's name (default 0600).
	Mode uint32
}

// Message flags, as in ferry.h (FERRY_REGION_MSG_*).
const (
	// MsgReturn: the message gives back a lease the peer held on one of this process's buffers.
	MsgReturn = C.FERRY_REGION_MSG_RETURN
	// MsgInvalid: the id the peer sent failed validation; Buf is nil.
	MsgInvalid = C.FERRY_REGION_MSG_INVALID
	// MsgPeerJoined: an event, a peer attached to the region.
	MsgPeerJoined = C.FERRY_REGION_MSG_PEER_JOINED
	// MsgPeerGone: an event, the peer closed the region or died; its leases were reclaimed.
	MsgPeerGone = C.FERRY_REGION_MSG_PEER_GONE
	// MsgCorrupt: with MsgPeerGone, the peer was disconnected for corrupting the region.
	MsgCorrupt = C.FERRY_REGION_MSG_CORRUPT
	// MsgError: the sender marked the message as an error reply.
	MsgError = C.FERRY_REGION_MSG_ERROR
)

// Region is one process's handle on a shared-memory region: a mapping shared with one peer
// process, buffers whose ids are valid in both processes, and a message ring in each direction.
//
// A Region is made with CreateRegion (then Share over a Unix socket), CreateNamedRegion (then a
// peer calls OpenRegion with the name), or received with ReceiveRegion / OpenRegion. Waiting for
// messages parks the goroutine in Go's netpoller (the region's wait descriptor is an epoll set), so
// no OS thread is held per waiting receiver.
//
// All methods are safe for concurrent use; Receive calls are served one at a time. Close releases
// the handle; the peer sees the region close and reclaims the leases this process held.
type Region struct {
	id     uint64
	file   *os.File
	rc     syscall.RawConn
	recvMu sync.Mutex
	closed atomic.Bool
	// cmsgs is the receive array (guarded by recvMu): C memory, so cgo may keep pointers into it.
	cmsgs *[regionBatch]C.FerryRegionMsg
}

// regionBatch is the most messages one receive crossing returns.
const regionBatch = 64

func (c *RegionConfig) toC() *C.FerryRegionConfig {
	if c == nil {
		return nil
	}
	cc := (*C.FerryRegionConfig)(C.malloc(C.size_t(unsafe.Sizeof(C.FerryRegionConfig{}))))
	*cc = C.FerryRegionConfig{ring: C.uint64_t(c.Ring), slots: C.uint64_t(c.Slots), arena: C.uint64_t(c.Arena), mode: C.uint32_t(c.Mode)}
	return cc
}

func freeC(p *C.FerryRegionConfig) {
	if p != nil {
		C.free(unsafe.Pointer(p))
	}
}

// CreateRegion creates a region in a new sealed memory file; share it with a peer with Share.
// cfg may be nil for the defaults.
func CreateRegion(cfg *RegionConfig) (*Region, error) {
	if abiErr != nil {
		return nil, abiErr
	}
	cc := cfg.toC()
	defer freeC(cc)
	r := C.ferry_rgo_create(cc)
	if err := statusErr(r.status); err != nil {
		return nil, err
	}
	return newRegion(uint64(r.region))
}

// CreateNamedRegion creates a region and publishes it under name (letters, digits, '-', '_',
// '.'), created with cfg.Mode (0600 by default, so only this user may open it). A peer opens it
// with OpenRegion while this process receives (Receive, a Receiver or a Server accept the peer).
// The name is removed on Close.
func CreateNamedRegion(name string, cfg *RegionConfig) (*Region, error) {
	if abiErr != nil {
		return nil, abiErr
	}
	if name == "" {
		return nil, &Error{Status: StatusInvalidArgument, Msg: "empty region name"}
	}
	cc := cfg.toC()
	defer freeC(cc)
	p := unsafe.StringData(name)
	r := C.ferry_rgo_create_named((*C.uint8_t)(p), C.size_t(len(name)), cc)
	runtime.KeepAlive(name)
	if err := statusErr(r.status); err != nil {
		return nil, err
	}
	return newRegion(uint64(r.region))
}

// OpenRegion opens the region published under name and attaches to it as the peer. It blocks (up
// to 5 s, holding the calling OS thread) for the creator's answer. Errors match ErrNotFound,
// ErrPermissionDenied, ErrBusy (the region has a peer) or ErrPeerGone (its creator is gone).
func OpenRegion(name string) (*Region, error) {
	if abiErr != nil {
		return nil, abiErr
	}
	if name == "" {
		return nil, &Error{Status: StatusInvalidArgument, Msg: "empty region name"}
	}
	p := unsafe.StringData(name)
	r := C.ferry_rgo_open((*C.uint8_t)(p), C.size_t(len(name)))
	runtime.KeepAlive(name)
	if err := statusErr(r.status); err != nil {
		return nil, err
	}
	return newRegion(uint64(r.region))
}

// ReceiveRegion receives a region that a peer shared on conn with Share, waiting up to timeout
// (0: forever), and attaches to it. conn stays open and the caller's.
func ReceiveRegion(conn *net.UnixConn, timeout time.Duration) (*Region, error) {
	if abiErr != nil {
		return nil, abiErr
	}
	sc, err := conn.SyscallConn()
	if err != nil {
		return nil, err
	}
	ms := int32(-1)
	if timeout > 0 {
		ms = int32(min(timeout.Milliseconds(), 1<<31-1))
	}
	var r C.ferry_rgo_region
	if err := sc.Control(func(fd uintptr) { r = C.ferry_rgo_from_socket(C.int(fd), C.int32_t(ms)) }); err != nil {
		return nil, err
	}
	if err := statusErr(r.status); err != nil {
		return nil, err
	}
	return newRegion(uint64(r.region))
}

func newRegion(id uint64) (*Region, error) {
	w := C.ferry_rgo_wait_fd(C.uint64_t(id))
	if err := statusErr(w.status); err != nil {
		C.ferry_region_close(C.uint64_t(id))
		return nil, err
	}
	// The epoll set belongs to the handle; Go's netpoller gets a duplicate of its own.
	fd, err := syscall.Dup(int(w.fd))
	if err == nil {
		syscall.CloseOnExec(fd)
		err = syscall.SetNonblock(fd, true)
	}
	if err != nil {
		C.ferry_region_close(C.uint64_t(id))
		return nil, &Error{Status: StatusSystemError, Msg: "region wait descriptor: " + err.Error()}
	}
	f := os.NewFile(uintptr(fd), "ferry-region")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		C.ferry_region_close(C.uint64_t(id))
		return nil, err
	}
	cm := (*[regionBatch]C.FerryRegionMsg)(C.malloc(C.size_t(unsafe.Sizeof([regionBatch]C.FerryRegionMsg{}))))
	return &Region{id: id, file: f, rc: rc, cmsgs: cm}, nil
}

// Share sends the region to the process at the other end of conn (which calls ReceiveRegion):
// the mapping, the doorbells and one end of a new link, with SCM_RIGHTS. conn stays the
// caller's. Errors match ErrBusy when the region already has a peer.
func (r *Region) Share(conn *net.UnixConn) error {
	if r.closed.Load() {
		return errRegionClosed
	}
	sc, err := conn.SyscallConn()
	if err != nil {
		return err
	}
	var st C.FerryStatus
	if err := sc.Control(func(fd uintptr) { st = C.ferry_region_share(C.uint64_t(r.id), C.int(fd)) }); err != nil {
		return err
	}
	return statusErr(st)
}

// Send flags as plain numbers for the files without cgo.
const (
	sendMove  = C.FERRY_REGION_SEND_MOVE
	sendError = C.FERRY_REGION_SEND_ERROR
)

func cFlags(f uint32) C.uint32_t { return C.uint32_t(f) }

var errRegionClosed error = &Error{Status: StatusClosed, Msg: "region is closed"}

// SetSpin sets the busy-poll budget: a receive that finds nothing spins up to d (at most 10 ms)
// before the goroutine parks, holding its OS thread while it spins. 0 turns spinning off.
func (r *Region) SetSpin(d time.Duration) error {
	if d < 0 {
		return &Error{Status: StatusInvalidArgument, Msg: "negative spin"}
	}
	return statusErr(C.ferry_region_set_spin(C.uint64_t(r.id), C.uint64_t(d.Nanoseconds())))
}

// Alloc returns a buffer of n bytes in this process's arena of the region. Its bytes are not
// cleared (a reused range holds old data). Errors match ErrRegionFull when the arena has no room.
func (r *Region) Alloc(n int) (*RegionBuffer, error) {
	if n < 0 {
		return nil, &Error{Status: StatusInvalidArgument, Msg: "negative buffer length"}
	}
	v := C.ferry_rgo_alloc(C.uint64_t(r.id), C.size_t(n))
	if err := statusErr(v.status); err != nil {
		return nil, err
	}
	return newRegionBuffer(r, uint64(v.view.id), unsafe.Pointer(v.view.ptr), int(v.view.len)), nil
}

// Send sends tag and value to the peer with buf (nil for none). The peer gets a hold of its own
// on buf (a lease: this process's memory is not reused until the peer releases it); buf stays
// open here. Errors match ErrQueueFull (the ring is full: the peer is behind), ErrPeerGone,
// ErrInvalidHandle (buf is closed or of another region).
func (r *Region) Send(buf *RegionBuffer, tag uint32, value uint64) error {
	return r.send(buf, tag, value, 0, 0)
}

// SendMove is Send that gives buf to the peer: on success buf is closed here and the peer holds
// it. A buffer received from the peer goes back to it this way (an in-place reply).
func (r *Region) SendMove(buf *RegionBuffer, tag uint32, value uint64) error {
	return r.send(buf, tag, value, 0, C.FERRY_REGION_SEND_MOVE)
}

func (r *Region) send(buf *RegionBuffer, tag uint32, value, corr uint64, flags C.uint32_t) error {
	var id uint64
	if buf != nil {
		if buf.r != r {
			return &Error{Status: StatusInvalidHandle, Msg: "buffer of another region"}
		}
		if !buf.acquire() {
			return errClosedBuf
		}
		id = buf.id
		defer buf.unlease()
	}
	err := statusErr(C.ferry_region_send(C.uint64_t(r.id), C.uint64_t(id), C.uint32_t(tag), C.uint64_t(value),
		C.uint64_t(corr), flags))
	if err == nil && buf != nil && flags&C.FERRY_REGION_SEND_MOVE != 0 {
		buf.forget()
	}
	return err
}

// Message is a received message or event. Buf, if not nil, is held by the receiver: Close it (or
// pass it on with SendMove) when done; a cleanup releases it if it becomes unreachable.
type Message struct {
	// Buf is the buffer that came with the message, in this process's mapping; nil for none.
	Buf *RegionBuffer
	// Tag and Value are the sender's.
	Tag   uint32
	Value uint64
	// Corr is the sender's correlation number (request/response).
	Corr uint64
	// Flags are Msg* flags.
	Flags uint32
}

// IsEvent reports whether the message is an event (a peer joined or went), not a message.
func (m *Message) IsEvent() bool {
	return m.Flags&(MsgPeerJoined|MsgPeerGone) != 0
}

// Receive waits until at least one message (or event) is ready, or ctx is done, and fills out
// with up to len(out) of them; it returns how many. While it waits the goroutine is parked in the
// netpoller. Errors: ctx.Err(), ErrClosed after Close, ErrCorrupt when the peer was disconnected
// for corrupting the region (its MsgPeerGone event follows).
func (r *Region) Receive(ctx context.Context, out []Message) (int, error) {
	if len(out) == 0 {
		return 0, &Error{Status: StatusInvalidArgument, Msg: "empty message slice"}
	}
	r.recvMu.Lock()
	defer r.recvMu.Unlock()
	if r.closed.Load() {
		return 0, errRegionClosed
	}
	capN := min(len(out), regionBatch)
	var n int
	var st C.FerryStatus
	try := func(uintptr) bool {
		res := C.ferry_rgo_recv(C.uint64_t(r.id), &r.cmsgs[0], C.size_t(capN), 0)
		n, st = int(res.n), res.status
		return n > 0 || st != C.FERRY_STATUS_OK
	}
	if try(0) {
		return r.collect(out, n, st)
	}
	if ctx.Done() != nil {
		stop := context.AfterFunc(ctx, func() { r.file.SetReadDeadline(time.Unix(1, 0)) })
		defer func() {
			if !stop() {
				r.file.SetReadDeadline(time.Time{})
			}
		}()
	}
	if err := r.rc.Read(try); err != nil {
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		if errors.Is(err, os.ErrClosed) {
			return 0, errRegionClosed
		}
		return 0, err
	}
	return r.collect(out, n, st)
}

func (r *Region) collect(out []Message, n int, st C.FerryStatus) (int, error) {
	if err := statusErr(st); err != nil {
		return 0, err
	}
	for i := 0; i < n; i++ {
		c := &r.cmsgs[i]
		m := Message{Tag: uint32(c.tag), Value: uint64(c.value), Corr: uint64(c.corr), Flags: uint32(c.flags)}
		if c.id != 0 {
			m.Buf = newRegionBuffer(r, uint64(c.id), unsafe.Pointer(c.ptr), int(c.len))
		}
		out[i] = m
	}
	return n, nil
}

// AwaitPeer receives until a peer has attached to a region this process created (the
// MsgPeerJoined event), or ctx is done. Use it before the first Send on a new region; messages
// that arrive with the event are released.
func (r *Region) AwaitPeer(ctx context.Context) error {
	if st, err := r.Stats(); err != nil || st.Peer == 2 {
		return err
	}
	var ms [regionBatch]Message
	for {
		n, err := r.Receive(ctx, ms[:])
		if err != nil {
			return err
		}
		joined := false
		for _, m := range ms[:n] {
			joined = joined || m.Flags&MsgPeerJoined != 0
			if m.Buf != nil {
				m.Buf.Close()
			}
		}
		if joined {
			return nil
		}
	}
}

// RegionStats are the counters of one region handle.
type RegionStats struct {
	// Seat is 0 for the creator, 1 for the peer.
	Seat uint32
	// Peer is 0 none yet, 1 offered, 2 attached, 3 gone.
	Peer uint32
	// OwnBuffers are this process's live buffers; OwnRefs its holds on them.
	OwnBuffers, OwnRefs uint64
	// Lent are the leases the peer holds on this process's buffers; Held the leases this process
	// holds on the peer's.
	Lent, Held uint64
	// UsedBytes of this process's arena, of ArenaBytes.
	UsedBytes, ArenaBytes uint64
	// PeersGone counts peers that closed or died; Corrupt failed metadata checks; InvalidIDs
	// received ids that failed validation.
	PeersGone, Corrupt, InvalidIDs uint64
}

// Stats returns the handle's counters.
func (r *Region) Stats() (RegionStats, error) {
	s := C.ferry_rgo_region_stats(C.uint64_t(r.id))
	if err := statusErr(s.status); err != nil {
		return RegionStats{}, err
	}
	c := s.stats
	return RegionStats{Seat: uint32(c.seat), Peer: uint32(c.peer), OwnBuffers: uint64(c.own_buffers),
		OwnRefs: uint64(c.own_refs), Lent: uint64(c.lent), Held: uint64(c.held), UsedBytes: uint64(c.used_bytes),
		ArenaBytes: uint64(c.arena_bytes), PeersGone: uint64(c.peers_gone), Corrupt: uint64(c.corrupt),
		InvalidIDs: uint64(c.invalid_ids)}, nil
}

// OpenRegions returns the number of region handles open in this process (0 when the linked library
// is of another ABI version: then no region can be open).
func OpenRegions() uint64 {
	if abiErr != nil {
		return 0
	}
	return uint64(C.ferry_rgo_count())
}

// Close closes the handle: a Receive waiting on it returns ErrClosed, every buffer of the region
// held here becomes invalid (their Bytes must not be used any more), and the peer reclaims the
// leases this process held. Close can be called more than once; only the first call closes.
func (r *Region) Close() error {
	if r.closed.Swap(true) {
		return nil
	}
	err := r.file.Close()
	r.recvMu.Lock()
	cm := r.cmsgs
	r.cmsgs = nil
	r.recvMu.Unlock()
	C.free(unsafe.Pointer(cm))
	if st := statusErr(C.ferry_region_close(C.uint64_t(r.id))); st != nil {
		return st
	}
	return err
}

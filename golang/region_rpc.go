package ferry

import (
	"context"
	"errors"
	"sync"
)

// Receiver calls a registered function for every message and event that arrives on a region, on
// a goroutine of its own that waits in the netpoller between batches: the cross-process callback.
type Receiver struct {
	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

// NewReceiver starts a Receiver that calls fn for each message (fn owns m.Buf and must Close it or
// pass it on) until Close, or until the region is closed. Messages are delivered in order, a batch
// per wake-up.
func (r *Region) NewReceiver(fn func(m *Message)) *Receiver {
	ctx, cancel := context.WithCancel(context.Background())
	rc := &Receiver{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(rc.done)
		var batch [regionBatch]Message
		for {
			n, err := r.Receive(ctx, batch[:])
			if err != nil {
				if ctx.Err() == nil && !errors.Is(err, ErrClosed) {
					rc.err = err
				}
				if !errors.Is(err, ErrCorrupt) || ctx.Err() != nil {
					return
				}
				continue
			}
			for i := range batch[:n] {
				fn(&batch[i])
				batch[i] = Message{}
			}
		}
	}()
	return rc
}

// Close stops the Receiver and waits for its goroutine (and any fn call in progress) to finish.
// It returns the error that stopped the loop on its own, if any. Close can be called more than once.
func (rc *Receiver) Close() error {
	rc.cancel()
	<-rc.done
	return rc.err
}

// Client sends requests on a region and matches each reply to its request by a correlation
// number; a goroutine receives the replies. Messages that are not replies to a pending call go to
// the function given to NewClient (or are released).
type Client struct {
	r       *Region
	mu      sync.Mutex
	next    uint64
	pending map[uint64]chan Message
	gone    error
	recv    *Receiver
}

// NewClient starts a Client on r. other, if not nil, gets every message that is not a reply to a
// pending Call (events included); it owns m.Buf.
func NewClient(r *Region, other func(m *Message)) *Client {
	c := &Client{r: r, pending: make(map[uint64]chan Message)}
	c.recv = r.NewReceiver(func(m *Message) {
		c.mu.Lock()
		if m.Flags&MsgPeerGone != 0 {
			c.gone = &Error{Status: StatusPeerGone, Msg: "the region's peer is gone"}
			for k, ch := range c.pending {
				close(ch)
				delete(c.pending, k)
			}
		}
		ch, ok := c.pending[m.Corr]
		if ok && m.Corr != 0 && !m.IsEvent() {
			delete(c.pending, m.Corr)
			c.mu.Unlock()
			ch <- *m
			return
		}
		c.mu.Unlock()
		if other != nil {
			other(m)
		} else if m.Buf != nil {
			m.Buf.Close()
		}
	})
	return c
}

// Call sends a request (buf may be nil; with move, buf is given to the peer) and waits for the
// reply or for ctx. The reply's Buf, if any, is the caller's. A reply the server marked as an
// error returns an error matching ErrCallbackFailed, with the reply (its Value is the server's
// detail code). Errors: ctx.Err() (a late reply is released), ErrPeerGone, ErrQueueFull.
func (c *Client) Call(ctx context.Context, buf *RegionBuffer, tag uint32, value uint64, move bool) (Message, error) {
	ch := make(chan Message, 1)
	c.mu.Lock()
	if c.gone != nil {
		c.mu.Unlock()
		return Message{}, c.gone
	}
	c.next++
	corr := c.next
	c.pending[corr] = ch
	c.mu.Unlock()
	var flags uint32
	if move {
		flags = sendMove
	}
	if err := c.r.send(buf, tag, value, corr, cFlags(flags)); err != nil {
		c.drop(corr)
		return Message{}, err
	}
	select {
	case m, ok := <-ch:
		if !ok {
			return Message{}, &Error{Status: StatusPeerGone, Msg: "the region's peer is gone"}
		}
		if m.Flags&MsgError != 0 {
			return m, &Error{Status: StatusCallbackFailed, Msg: "the server replied with an error"}
		}
		return m, nil
	case <-ctx.Done():
		if !c.drop(corr) {
			// The reply is in flight to ch: release it.
			if m, ok := <-ch; ok && m.Buf != nil {
				m.Buf.Close()
			}
		}
		return Message{}, ctx.Err()
	}
}

// drop forgets a pending call; false if the receiver already took it.
func (c *Client) drop(corr uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.pending[corr]
	delete(c.pending, corr)
	return ok
}

// Close stops the Client's receiving goroutine. The region stays open.
func (c *Client) Close() error {
	return c.recv.Close()
}

// Handler answers one request. It owns req.Buf for the call: returning req.Buf as reply sends it
// back in place (zero-copy); returning another buffer (allocated in the region) moves that one to
// the peer and releases req.Buf; a nil reply sends only value. A non-nil error sends an error
// reply whose value is value.
type Handler func(req *Message) (reply *RegionBuffer, value uint64, err error)

// Serve answers the requests that arrive on r with h until ctx is done (returns ctx.Err()), the
// peer goes (ErrPeerGone) or the region is closed (ErrClosed). Events other than the peer going are
// skipped. Serve waits in the netpoller between batches.
func Serve(ctx context.Context, r *Region, h Handler) error {
	var batch [regionBatch]Message
	for {
		n, err := r.Receive(ctx, batch[:])
		if err != nil {
			if errors.Is(err, ErrCorrupt) {
				continue
			}
			return err
		}
		gone := false
		for i := range batch[:n] {
			m := &batch[i]
			if m.IsEvent() {
				gone = gone || m.Flags&MsgPeerGone != 0
				continue
			}
			reply, value, herr := h(m)
			var serr error
			switch {
			case herr != nil:
				if reply != nil && reply != m.Buf {
					reply.Close()
				}
				if m.Buf != nil {
					m.Buf.Close()
				}
				serr = r.send(nil, m.Tag, value, m.Corr, cFlags(sendError))
			case reply == nil:
				if m.Buf != nil {
					m.Buf.Close()
				}
				serr = r.send(nil, m.Tag, value, m.Corr, 0)
			default:
				if m.Buf != nil && reply != m.Buf {
					m.Buf.Close()
				}
				serr = r.send(reply, m.Tag, value, m.Corr, cFlags(sendMove))
				if serr != nil {
					reply.Close()
				}
			}
			batch[i] = Message{}
			if errors.Is(serr, ErrPeerGone) || errors.Is(serr, ErrCorrupt) {
				gone = true
			} else if serr != nil {
				return serr
			}
		}
		if gone {
			return &Error{Status: StatusPeerGone, Msg: "the region's peer is gone"}
		}
	}
}

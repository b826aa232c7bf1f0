package egress

import (
	"errors"
	"fmt"
	"time"
)

// A stream's outputs: Run owns the list; AddOutput and RemoveOutput ask
// it to change the list, the tag pump and Stats read it.

// checkOutput validates what can be checked before connecting.
func checkOutput(o Output) error {
	if o.ID == "" {
		return errors.New("egress: output without an id")
	}
	if o.URL.raw == "" {
		return fmt.Errorf("egress: output %s: %w: no URL", o.ID, ErrInvalidURL)
	}
	if err := ValidateConnectInfo(o.ConnectInfo); err != nil {
		return fmt.Errorf("egress: output %s: %w", o.ID, err)
	}
	return nil
}

// outputEnded logs a failed output and returns an error once no output is
// left sending: a stream that reaches no destination has failed.
func (s *Stream) outputEnded(o *output) error {
	oe := o.failed()
	if oe == nil {
		return nil
	}
	s.log.Warn("destination failed", "output", o.ID, "url", o.URL.String(), "err", oe.Err)
	var errs []error
	for _, o := range s.outputList() {
		oe := o.failed()
		if oe == nil {
			return nil
		}
		errs = append(errs, oe)
	}
	return fmt.Errorf("egress: every destination failed: %w", errors.Join(errs...))
}

func (s *Stream) outputList() []*output {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.outputs
}

// outputOp is an AddOutput or RemoveOutput request for Run.
type outputOp struct {
	add    *Output // or remove:
	remove string
	reply  chan opReply
}

type opReply struct {
	removed *output
	err     error
}

// apply runs on Run's goroutine, the only one that changes the list.
func (s *Stream) apply(op outputOp, start func(*output)) opReply {
	outputs := s.outputList()
	if op.add != nil {
		if len(outputs) >= MaxOutputs {
			return opReply{err: fmt.Errorf("egress: add output %s: the stream has %d outputs, the limit", op.add.ID, MaxOutputs)}
		}
		for _, o := range outputs {
			if o.ID == op.add.ID {
				return opReply{err: fmt.Errorf("egress: add output %s: the stream already has an output with that id", op.add.ID)}
			}
		}
		o, err := newOutput(*op.add, s)
		if err != nil {
			return opReply{err: fmt.Errorf("egress: %w", err)}
		}
		s.mu.Lock()
		s.outputs = append(outputs[:len(outputs):len(outputs)], o)
		s.mu.Unlock()
		start(o)
		s.opts.OnChange()
		return opReply{}
	}
	var target *output
	others := 0
	rest := make([]*output, 0, len(outputs))
	for _, o := range outputs {
		switch {
		case o.ID == op.remove:
			target = o
			continue
		case o.failed() == nil:
			others++
		}
		rest = append(rest, o)
	}
	if target == nil {
		return opReply{err: fmt.Errorf("egress: remove output %s: no such output", op.remove)}
	}
	if others == 0 && target.failed() == nil {
		return opReply{err: fmt.Errorf("egress: remove output %s: it is the last one sending; stop the broadcast instead", op.remove)}
	}
	s.mu.Lock()
	s.outputs = rest
	s.mu.Unlock()
	target.stop()
	return opReply{removed: target}
}

// errNotRunning is returned by AddOutput and RemoveOutput outside Run.
var errNotRunning = errors.New("egress: the stream is not running")

func (s *Stream) do(op outputOp) (opReply, error) {
	s.mu.Lock()
	running := s.running
	s.mu.Unlock()
	if !running {
		return opReply{}, errNotRunning
	}
	op.reply = make(chan opReply, 1)
	select {
	case s.ops <- op:
		return <-op.reply, nil
	case <-s.loopDone:
		return opReply{}, errNotRunning
	}
}

// AddOutput starts sending the running stream to one more destination. Its
// first session starts with the merged onMetaData and the sequence
// headers, then a keyframe (requested at once). Adding an id the stream
// already has, or more than MaxOutputs, is an error.
func (s *Stream) AddOutput(o Output) error {
	if err := checkOutput(o); err != nil {
		return err
	}
	r, err := s.do(outputOp{add: &o})
	if err != nil {
		return err
	}
	return r.err
}

// RemoveOutput ends one destination's session cleanly (FCUnpublish,
// deleteStream) while the stream goes on, and returns once it has ended.
// The output leaves Stats. Removing the last output still sending is
// refused: stop the broadcast instead.
func (s *Stream) RemoveOutput(id string) error {
	r, err := s.do(outputOp{remove: id})
	if err != nil {
		return err
	}
	if r.err != nil {
		return r.err
	}
	t := time.NewTimer(drainTimeout)
	defer t.Stop()
	select {
	case <-r.removed.done:
	case <-t.C:
		r.removed.cancel() // the destination took too long: just close
		<-r.removed.done
	}
	return nil
}

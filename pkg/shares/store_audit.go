package shares

// The holder's audit log keeps its own head file next to it, but an
// attacker who can write the disk can cut the log's tail and rewind or
// delete that file too. The sealed state therefore also records the audit
// log's high-water mark, under the store's MAC: the log may never be found
// shorter than it. The mark is raised after the log's line is fsynced, so
// after a crash the log is at least as long as the mark.

// AuditMark returns the audit log high-water mark recorded in the sealed
// state; 0 if none was ever recorded.
func (s *Store) AuditMark() (uint64, error) {
	st, err := s.State()
	return st.Audit, err
}

// SetAuditMark raises the audit high-water mark to seq. A lower seq is
// ignored: the mark never goes down, except by ResetAuditMark.
func (s *Store) SetAuditMark(seq uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.state()
	if err != nil || seq <= st.Audit {
		return err
	}
	st.Audit = seq
	return s.writeStateOnly(st)
}

// ResetAuditMark sets the audit high-water mark to seq even when that is
// lower: an operator, holding the seal key, started a new audit log on
// purpose.
func (s *Store) ResetAuditMark(seq uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.state()
	if err != nil {
		return err
	}
	st.Audit = seq
	return s.writeStateOnly(st)
}

// writeStateOnly writes st when only fields outside the generation mark
// changed, so the mark file is left alone.
func (s *Store) writeStateOnly(st State) error {
	b, err := s.seal(kindState, st)
	if err != nil {
		return err
	}
	return WriteFileAtomic(s.statePath(), b)
}

package sharerpc

import (
	"context"
	"errors"
	"strings"

	"github.com/keyshare/keyshare/pkg/policy"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// errorDomain names this service in the ErrorInfo detail of a denial.
const errorDomain = "keyshare.share.v1"

// internalMessage is all a peer learns about an error that is not a denial.
const internalMessage = "internal error on the holder; see its log"

// denialCodes maps each denial reason to its gRPC code. A reason not listed
// maps to PermissionDenied.
var denialCodes = map[policy.Reason]codes.Code{
	policy.ReasonPeerNotAllowed:     codes.PermissionDenied,
	policy.ReasonSourceNotAllowed:   codes.PermissionDenied,
	policy.ReasonOperatorRule:       codes.PermissionDenied,
	policy.ReasonApprovalPending:    codes.PermissionDenied,
	policy.ReasonUnauthenticated:    codes.Unauthenticated,
	policy.ReasonUnknownTarget:      codes.FailedPrecondition,
	policy.ReasonTargetNotSealed:    codes.FailedPrecondition,
	policy.ReasonTargetNotRekeying:  codes.FailedPrecondition,
	policy.ReasonTargetUnchecked:    codes.FailedPrecondition,
	policy.ReasonGenerationMismatch: codes.FailedPrecondition,
	policy.ReasonMaintenanceHold:    codes.FailedPrecondition,
	policy.ReasonWriteRefused:       codes.FailedPrecondition,
	policy.ReasonRateLimited:        codes.ResourceExhausted,
}

// Code returns the gRPC code for a denial reason.
func Code(r policy.Reason) codes.Code {
	if c, ok := denialCodes[r]; ok {
		return c
	}
	return codes.PermissionDenied
}

// toStatus turns a Handler error into the status sent to the peer, and
// reports whether it is an internal error the server should log.
func toStatus(err error) (error, bool) {
	if d, ok := policy.AsDenial(err); ok {
		return denialStatus(d), false
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "deadline exceeded on the holder"), false
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "request canceled"), false
	}
	return status.Error(codes.Internal, internalMessage), true
}

// denialStatus carries the denial in the status message ("denied: reason:
// detail") and in an ErrorInfo detail.
func denialStatus(d *policy.Denial) error {
	st := status.New(Code(d.Reason), d.Error())
	info := &errdetails.ErrorInfo{Reason: string(d.Reason), Domain: errorDomain}
	if d.Detail != "" {
		info.Metadata = map[string]string{"detail": d.Detail}
	}
	if withInfo, err := st.WithDetails(info); err == nil {
		st = withInfo
	}
	return st.Err()
}

// DenialFromError returns the *policy.Denial a Server sent in the gRPC
// status err, if it is one. Client methods already return such denials
// wrapped; this helper is for callers using the generated stubs.
func DenialFromError(err error) (*policy.Denial, bool) {
	if d, ok := policy.AsDenial(err); ok {
		return d, true
	}
	st, ok := status.FromError(err)
	if !ok || !isDenialCode(st.Code()) {
		return nil, false
	}
	for _, det := range st.Details() {
		if info, ok := det.(*errdetails.ErrorInfo); ok && info.GetDomain() == errorDomain && info.GetReason() != "" {
			return &policy.Denial{Reason: policy.Reason(info.GetReason()), Detail: info.GetMetadata()["detail"]}, true
		}
	}
	// Fall back to the message: "denied: <reason>" or "denied: <reason>: <detail>".
	rest, ok := strings.CutPrefix(st.Message(), "denied: ")
	if !ok || rest == "" {
		return nil, false
	}
	reason, detail, _ := strings.Cut(rest, ": ")
	return &policy.Denial{Reason: policy.Reason(reason), Detail: detail}, true
}

func isDenialCode(c codes.Code) bool {
	switch c {
	case codes.PermissionDenied, codes.Unauthenticated, codes.FailedPrecondition, codes.ResourceExhausted:
		return true
	}
	return false
}

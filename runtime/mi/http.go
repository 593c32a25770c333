package mi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
)

// MaxRequestBytes caps a JSON-RPC request body.
const MaxRequestBytes = 1 << 20

// Response is a JSON-RPC 2.0 response. Exactly one of Result and Error is
// set; ID echoes the request's (null when it could not be read).
type Response struct {
	JSONRPC string          `json:"jsonrpc"`
	Result  any             `json:"result,omitempty"`
	Error   *Error          `json:"error,omitempty"`
	ID      json.RawMessage `json:"id"`
}

var nullID = json.RawMessage("null")

// ServeHTTP answers JSON-RPC 2.0 requests POSTed to any path the registry
// is mounted on (mi_http mounts it at /mi), as OpenSIPS's mi_http does:
// another method is 405, an empty body 400, a notification (no id) 202
// with no body; every JSON-RPC answer, error or not, is 200.
func (r *Registry) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "405 Method Not Allowed", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, MaxRequestBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			http.Error(w, "413 Request Entity Too Large", http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "400 Bad Request", http.StatusBadRequest)
		return
	}
	if len(bytes.TrimSpace(body)) == 0 {
		http.Error(w, "400 Bad Request", http.StatusBadRequest)
		return
	}
	resp, reply := r.Handle(body)
	if !reply {
		w.WriteHeader(http.StatusAccepted)
		return
	}
	out, err := json.Marshal(resp)
	if err != nil {
		// A result that cannot be encoded is the command's fault.
		out, _ = json.Marshal(Response{JSONRPC: "2.0", ID: resp.ID,
			Error: &Error{Code: CodeServerError, Message: "Server error", Data: "cannot encode the result: " + err.Error()}})
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(append(out, '\n'))
}

// Handle runs one JSON-RPC request body. reply is false for a notification
// that needs no answer (one without an id, unless the request itself was
// unreadable).
func (r *Registry) Handle(body []byte) (resp Response, reply bool) {
	resp = Response{JSONRPC: "2.0", ID: nullID}
	fail := func(code int, msg string) (Response, bool) {
		resp.Error = &Error{Code: code, Message: msg}
		return resp, true
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil {
		var syn *json.SyntaxError
		if errors.As(err, &syn) || !json.Valid(body) {
			return fail(CodeParseError, "Parse error")
		}
		return fail(CodeInvalidRequest, "Invalid Request") // valid JSON, not an object (batches included)
	}
	invalid := false
	rawID, hasID := fields["id"]
	if hasID {
		switch firstByte(rawID) {
		case 'n', '"', '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
			resp.ID = rawID
		default:
			invalid = true
		}
	}
	var version string
	if json.Unmarshal(fields["jsonrpc"], &version) != nil || version != "2.0" {
		invalid = true
	}
	var method string
	if raw, ok := fields["method"]; !ok || firstByte(raw) != '"' || json.Unmarshal(raw, &method) != nil {
		invalid = true
	}
	var params any
	if raw, ok := fields["params"]; ok {
		switch firstByte(raw) {
		case '[', '{':
			dec := json.NewDecoder(bytes.NewReader(raw))
			dec.UseNumber()
			if dec.Decode(&params) != nil {
				invalid = true
			}
			params = normalize(params)
		default:
			invalid = true
		}
	}
	if invalid {
		return fail(CodeInvalidRequest, "Invalid Request")
	}
	result, err := r.Call(method, params)
	if !hasID {
		return resp, false
	}
	if err != nil {
		resp.Error = toError(err)
		return resp, true
	}
	resp.Result = result
	return resp, true
}

func firstByte(raw json.RawMessage) byte {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return 0
	}
	return raw[0]
}

// normalize turns json.Numbers into int (whole numbers that fit) or
// float64, recursively.
func normalize(v any) any {
	switch x := v.(type) {
	case json.Number:
		if n, err := x.Int64(); err == nil && n >= math.MinInt && n <= math.MaxInt {
			return int(n)
		}
		f, _ := x.Float64()
		return f
	case []any:
		for i := range x {
			x[i] = normalize(x[i])
		}
	case map[string]any:
		for k := range x {
			x[k] = normalize(x[k])
		}
	}
	return v
}

// kargo-http-step: Kargo's own rules for the `http` promotion step, for the tests of examples/kargo/.
//
// Test tool, not product code. It renders a step's config with Kargo's template engine
// (github.com/akuity/kargo/pkg/expressions: `${{ }}` and `${% %}` delimiters, quote(), the first closing
// delimiter ends an expression), validates the result against the http step's JSON Schema from the same
// Kargo release, and judges an HTTP response the way Kargo's step runner does
// (pkg/promotion/runner/builtin/http_requester.go at that release: expr-lang success, failure and error
// expressions, the response environment, the outcome switch).
//
// Reads one JSON request on stdin, writes one JSON answer on stdout:
//
//	{"render": {"config": {...}, "ctx": {...}, "vars": {...}, "secrets": {"name": {"key": "value"}}}}
//	{"judge": {"config": {...rendered...}, "status": 200, "contentType": "application/json", "body": "..."}}
package main

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/akuity/kargo/pkg/expressions"
	"github.com/expr-lang/expr"
	"github.com/xeipuuv/gojsonschema"
	"sigs.k8s.io/yaml"
)

//go:embed http-config.json
var httpConfigSchema []byte

type renderRequest struct {
	Config  json.RawMessage              `json:"config"`
	Ctx     map[string]any               `json:"ctx"`
	Vars    map[string]any               `json:"vars"`
	Secrets map[string]map[string]string `json:"secrets"`
}

type judgeRequest struct {
	Config      httpConfig `json:"config"`
	Status      int        `json:"status"`
	ContentType string     `json:"contentType"`
	Body        string     `json:"body"`
}

type httpOutput struct {
	Name           string `json:"name"`
	FromExpression string `json:"fromExpression"`
}

// The fields of Kargo's builtin.HTTPConfig this tool acts on.
type httpConfig struct {
	SuccessExpression   string       `json:"successExpression"`
	FailureExpression   string       `json:"failureExpression"`
	ErrorExpression     string       `json:"errorExpression"`
	ResponseContentType string       `json:"responseContentType"`
	PollInterval        string       `json:"pollInterval"`
	Outputs             []httpOutput `json:"outputs"`
}

func main() {
	var req struct {
		Render *renderRequest `json:"render"`
		Judge  *judgeRequest  `json:"judge"`
	}
	if err := json.NewDecoder(os.Stdin).Decode(&req); err != nil {
		fail(err)
	}
	var out any
	var err error
	switch {
	case req.Render != nil:
		out, err = render(*req.Render)
	case req.Judge != nil:
		out, err = judge(*req.Judge)
	default:
		err = fmt.Errorf("expected {render: ...} or {judge: ...}")
	}
	if err != nil {
		fail(err)
	}
	if err = json.NewEncoder(os.Stdout).Encode(out); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}

// render evaluates the config as Kargo's StepEvaluator.Config does (pkg/promotion/evaluator.go), with the
// `secret()` data function answering from the request instead of a Kubernetes Secret.
func render(r renderRequest) (any, error) {
	env := map[string]any{"ctx": r.Ctx, "vars": r.Vars, "outputs": map[string]any{}, "stepMetas": map[string]any{}}
	secret := expr.Function("secret", func(params ...any) (any, error) {
		name, _ := params[0].(string)
		data, ok := r.Secrets[name]
		if !ok {
			return map[string]string{}, nil
		}
		return data, nil
	}, new(func(string) map[string]string))
	rendered, err := expressions.EvaluateJSONTemplate(r.Config, env, secret)
	if err != nil {
		return nil, err
	}
	result, err := gojsonschema.Validate(gojsonschema.NewBytesLoader(httpConfigSchema), gojsonschema.NewBytesLoader(rendered))
	if err != nil {
		return nil, err
	}
	problems := []string{}
	for _, e := range result.Errors() {
		problems = append(problems, e.String())
	}
	var config map[string]any
	if err = yaml.Unmarshal(rendered, &config); err != nil {
		return nil, err
	}
	return map[string]any{"config": config, "schemaErrors": problems}, nil
}

// judge is httpRequester.run after the request was sent: the expression environment, the criteria, the
// outcome.
func judge(r judgeRequest) (any, error) {
	header := http.Header{}
	if r.ContentType != "" {
		header.Set("Content-Type", r.ContentType)
	}
	response := map[string]any{
		"status":  int64(r.Status),
		"header":  header.Get,
		"headers": header,
		"body":    map[string]any{},
	}
	contentType := r.Config.ResponseContentType
	if contentType == "" {
		contentType, _, _ = mime.ParseMediaType(header.Get("Content-Type"))
	}
	if len(r.Body) > 0 {
		switch strings.ToLower(contentType) {
		case "text/plain":
			response["body"] = r.Body
		default:
			if contentType != "application/json" && !json.Valid([]byte(r.Body)) {
				break
			}
			var parsed any
			if err := json.Unmarshal([]byte(r.Body), &parsed); err != nil {
				return outcome("Errored", fmt.Sprintf("failed to parse JSON response: %s", err), false, nil), nil
			}
			response["body"] = parsed
		}
	}
	env := map[string]any{"response": response}

	success, err := criterion(r.Config.SuccessExpression, env)
	if err != nil {
		return outcome("Errored", "error evaluating success criteria: "+err.Error(), false, nil), nil
	}
	failure, err := criterion(r.Config.FailureExpression, env)
	if err != nil {
		return outcome("Errored", "error evaluating failure criteria: "+err.Error(), false, nil), nil
	}
	switch {
	case failure != nil && *failure:
		message := fmt.Sprintf("HTTP (%d) response met failure criteria", r.Status)
		if text := errorMessage(r.Config.ErrorExpression, env); text != "" {
			message = fmt.Sprintf("HTTP (%d) response met failure criteria: %q", r.Status, text)
		}
		return outcome("Failed", message, true, nil), nil
	case success != nil && *success:
		outputs := map[string]any{}
		for _, o := range r.Config.Outputs {
			program, err := expr.Compile(o.FromExpression)
			if err != nil {
				return nil, err
			}
			if outputs[o.Name], err = expr.Run(program, env); err != nil {
				return outcome("Errored", fmt.Sprintf("error evaluating output expression %q: %s", o.Name, err), false, nil), nil
			}
		}
		return outcome("Succeeded", "", false, outputs), nil
	case success == nil && failure == nil:
		if r.Status >= 200 && r.Status < 300 {
			return outcome("Succeeded", "", false, nil), nil
		}
		return outcome("Failed", "", false, nil), nil
	default:
		interval := 30 * time.Second
		if r.Config.PollInterval != "" {
			if interval, err = time.ParseDuration(r.Config.PollInterval); err != nil {
				return nil, err
			}
		}
		o := outcome("Running", "", false, nil)
		o["retryAfter"] = interval.String()
		return o, nil
	}
}

func outcome(status, message string, terminal bool, outputs map[string]any) map[string]any {
	return map[string]any{"status": status, "message": message, "terminal": terminal, "outputs": outputs}
}

func criterion(expression string, env map[string]any) (*bool, error) {
	if expression == "" {
		return nil, nil
	}
	program, err := expr.Compile(expression)
	if err != nil {
		return nil, err
	}
	value, err := expr.Run(program, env)
	if err != nil {
		return nil, err
	}
	b, ok := value.(bool)
	if !ok {
		return nil, fmt.Errorf("%q did not evaluate to a boolean (got %T)", expression, value)
	}
	return &b, nil
}

// errorMessage: an evaluation error or a non-string result falls back to the default message.
func errorMessage(expression string, env map[string]any) string {
	if expression == "" {
		return ""
	}
	program, err := expr.Compile(expression)
	if err != nil {
		return ""
	}
	value, err := expr.Run(program, env)
	if err != nil {
		return ""
	}
	text, _ := value.(string)
	return text
}

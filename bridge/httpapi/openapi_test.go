package httpapi

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
)

// TestOpenAPIMatchesRoutes: the document is valid OpenAPI 3 and lists
// exactly the endpoints the handler serves. The end-to-end API test checks
// every request and answer against the document's schemas.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	doc, err := openapi3.NewLoader().LoadFromData(OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("openapi.yaml is not valid: %v", err)
	}
	var documented []string
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			documented = append(documented, method+" "+path)
		}
	}
	var served []string
	for _, rt := range (&server{metrics: &metrics{}}).routes() {
		served = append(served, rt.pattern)
	}
	slices.Sort(documented)
	slices.Sort(served)
	if strings.Join(documented, "\n") != strings.Join(served, "\n") {
		t.Errorf("documented endpoints:\n%s\n\nserved endpoints:\n%s", strings.Join(documented, "\n"), strings.Join(served, "\n"))
	}
}

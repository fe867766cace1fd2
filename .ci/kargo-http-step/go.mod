module policy-server.test/kargo-http-step

go 1.26.0

require (
	github.com/akuity/kargo v1.11.2
	github.com/expr-lang/expr v1.17.8
	github.com/xeipuuv/gojsonschema v1.2.0
	sigs.k8s.io/yaml v1.6.0
)

require (
	github.com/xeipuuv/gojsonpointer v0.0.0-20190905194746-02993c407bfb // indirect
	github.com/xeipuuv/gojsonreference v0.0.0-20180127040603-bd5ef7bd5415 // indirect
	go.yaml.in/yaml/v2 v2.4.4 // indirect
	go.yaml.in/yaml/v3 v3.0.4 // indirect
)

# roomcast: make run (a broadcast end to end on this machine), make test,
# make bench. Each installs what it needs first (scripts/deps.sh).

BIN := $(CURDIR)/.bin
export ROOMCAST_LIVEKIT_SERVER := $(BIN)/livekit-server

.PHONY: deps build run test bench clean

deps:
	@./scripts/deps.sh

build: deps
	go build -o $(BIN)/roomcast ./cmd/roomcast
	go build -o $(BIN)/roomcast-demo ./cmd/roomcast-demo

# A local livekit-server, nginx-rtmp, a test-pattern publisher and roomcast,
# with a broadcast from the room to nginx. Ctrl-C stops everything.
run: build
	$(BIN)/roomcast-demo --roomcast $(BIN)/roomcast

# One package at a time: the end-to-end tests run real servers and
# encoders, and sharing 2 cores between packages makes timing noisy.
test: deps
	go test -p 1 -count=1 -timeout 40m ./...

bench: deps
	go test -run '^$$' -bench . -benchtime 1x -timeout 40m ./e2e/

clean:
	rm -rf $(BIN)

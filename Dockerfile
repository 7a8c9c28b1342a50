# hookgate: Caddy with the hookgate modules, as one static binary.
#
#	docker build -t hookgate .
#	docker run -p 8080:8080 -v hookgate-data:/data hookgate
#
# State (embedded JetStream, the API token) lives in the /data volume; the
# process runs as an unprivileged user (65532) on a distroless base with no
# shell. The configuration is deploy/Caddyfile; mount another at
# /etc/caddy/Caddyfile to replace it.

# --- build ---
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# docker build --build-arg VERSION=v1.2.3 .: shown by `hookgate version`.
ARG VERSION=devel
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X github.com/hookgate/hookgate.Version=${VERSION}" -o /out/hookgate ./caddy \
	&& mkdir -p /out/data /out/config

# --- run ---
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/hookgate /usr/bin/hookgate
COPY --from=build --chown=65532:65532 /out/data /data
COPY --from=build --chown=65532:65532 /out/config /config
COPY deploy/Caddyfile /etc/caddy/Caddyfile
# Caddy's data directory ({caddy data dir}/hookgate holds the engine) and the
# API token are kept in the volume.
ENV XDG_DATA_HOME=/data \
	XDG_CONFIG_HOME=/config \
	HOOKGATE_TOKEN_FILE=/data/api-token
USER 65532:65532
VOLUME ["/data"]
EXPOSE 8080
ENTRYPOINT ["/usr/bin/hookgate"]
CMD ["run", "--config", "/etc/caddy/Caddyfile", "--adapter", "caddyfile"]

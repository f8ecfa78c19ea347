// Node-RED settings for bench_peers.py: headless (no editor, no HTTP nodes, so
// it listens on no port at all; were HTTP turned back on, loopback only), the
// `pg` package in the global context (NODE_PATH points at the bench's npm
// cache), and the flow file the bench writes into the userDir.
module.exports = {
    uiHost: "127.0.0.1",
    httpAdminRoot: false,
    httpNodeRoot: false,
    flowFile: "flows.json",
    credentialSecret: false,
    functionGlobalContext: { pg: require("pg") },
    logging: { console: { level: "info", metrics: false, audit: false } },
    diagnostics: { enabled: false },
    telemetry: { enabled: false },
    editorTheme: { tours: false },
};

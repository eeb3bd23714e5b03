// A Node service for image tests: answers JSON on $BATON_SERVICE_PORT on all interfaces.
const http = require("http");
const port = parseInt(process.env.BATON_SERVICE_PORT || "8080", 10);
http.createServer((req, res) => {
  const body = JSON.stringify({ version: "node-v1", runtime: process.version, path: req.url });
  res.writeHead(200, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(body) });
  res.end(body);
}).listen(port, "0.0.0.0");
process.on("SIGTERM", () => process.exit(0));

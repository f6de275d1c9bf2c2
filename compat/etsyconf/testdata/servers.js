/* servers[]: a UDP and a TCP server, IPv6 on one of them; the top-level
   port is ignored when servers is set. */
({
  graphiteHost: "carbon.example.com",
  graphitePort: 2013,
  port: 9999,
  servers: [
    { server: "./servers/udp", address: "127.0.0.1", port: 8125 },
    { server: './servers/tcp', port: "8126" },
    { address: "::1", address_ipv6: true, port: 8127, },
  ],
})

//! The RESP2 client protocol: parsing, commands, connections.

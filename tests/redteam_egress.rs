//! Red team (root): the kernel layer's egress gate judges the final packet.

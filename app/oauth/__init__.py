"""The `oauth` blueprint: RFC 7009 revocation and RFC 7662 introspection for service clients."""

"""gRPC servicers: they translate protobuf to `node` and `federation` calls and back."""

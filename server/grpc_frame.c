/* framing: see grpc_frame.h */

//! paycore grpc

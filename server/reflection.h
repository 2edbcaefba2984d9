/* gRPC server reflection (grpc.reflection.v1 and v1alpha, ServerReflectionInfo): lets
 * stock clients (grpcurl, Postman, evans) list the services and fetch the
 * FileDescriptorProtos of proto/ without .proto files. The descriptors are protoc's
 * descriptor set of proto/, embedded in the binary at build time (CMakeLists.txt,
 * cmake/bin2c.cmake) and split per file at start. Sits beside the service (service.c
 * puts its stream handler in the method table); knows nothing of sequences. */
#ifndef SEQ_REFLECTION_H
#define SEQ_REFLECTION_H

#include <stddef.h>
#include <stdint.h>

#include "../engine/common.h"
#include "grpc.h"

typedef struct seq_reflection seq_reflection;

/* paths: the served method paths ("/pkg.Service/Method"); list_services answers the
 * distinct services among them, in order. Returns SEQ_OK, or SEQ_EINTERNAL (the
 * embedded descriptor set does not parse: a build problem; or out of memory). */
int seq_reflection_new(const char *const *paths, size_t n, seq_reflection **out, char *err,
                       size_t errlen);
void seq_reflection_free(seq_reflection *r);

/* One ServerReflectionRequest in, its ServerReflectionResponse appended to out:
 * list_services, file_by_filename and file_containing_symbol (the file and its imports,
 * transitively, the file first), all_extension_numbers_of_type (none: proto3); an
 * unknown file, symbol or extension, or a request naming none, is answered with the
 * protocol's error_response (NOT_FOUND / INVALID_ARGUMENT) and SEQ_OK: the stream goes
 * on. Returns SEQ_EINVAL (message in err) for bytes that do not decode as a request,
 * SEQ_EINTERNAL when out of memory. Thread-safe (r is read-only). */
int seq_reflection_answer(const seq_reflection *r, const uint8_t *req, size_t len, seq_buf *out,
                          char *err, size_t errlen);

/* The transport's stream handler (seq_grpc_stream_fn), ctx = the seq_reflection:
 * seq_reflection_answer per request message, each answer sent as one response. */
int seq_reflection_stream(void *ctx, seq_grpc_call *call, const uint8_t *msg, size_t len,
                          char *err, size_t errlen);

#endif

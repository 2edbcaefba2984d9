/* libFuzzer entry for gRPC server reflection request decoding (server/reflection.c): the
 * bytes of one ServerReflectionInfo request message, as the transport hands them over.
 * SEQ_EINVAL (does not decode) is fine; an OK answer must decode as a
 * ServerReflectionResponse that echoes the request and answers it (one of the response
 * kinds set). A crash, a leak, UB, or anything else is a bug.
 * Seeds: tests/fuzz/corpus_reflection/ (list_services, file_by_filename,
 * file_containing_symbol of known and unknown names, extension requests). */
#include <stdint.h>
#include <stdlib.h>

#include "grpc/reflection/v1/reflection.pb-c.h"
#include "server/reflection.h"

static seq_reflection *refl;

static const char *const PATHS[] = {"/seqd.v1.SequenceService/GetSequence",
                                    "/grpc.health.v1.Health/Check",
                                    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    if (!refl && seq_reflection_new(PATHS, 3, &refl, err, sizeof err) != SEQ_OK) abort();
    seq_buf out = {0};
    int rc = seq_reflection_answer(refl, data, size, &out, err, sizeof err);
    if (rc == SEQ_OK) {
        Grpc__Reflection__V1__ServerReflectionResponse *r =
            grpc__reflection__v1__server_reflection_response__unpack(NULL, out.len, out.data);
        if (!r || !r->original_request ||
            r->message_response_case ==
                GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE__NOT_SET)
            abort();
        grpc__reflection__v1__server_reflection_response__free_unpacked(r, NULL);
    } else if (rc != SEQ_EINVAL) {
        abort();
    }
    seq_buf_free(&out);
    return 0;
}

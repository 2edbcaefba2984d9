/* gRPC server reflection (reflection.h). At start the embedded FileDescriptorSet (protoc
 * --descriptor_set_out --include_imports over proto/, turned into C bytes by
 * cmake/bin2c.cmake) is split into its FileDescriptorProtos, and each file's symbols
 * (package-qualified messages, nested messages, fields, enums, services, methods) are
 * indexed; the bytes sent are protoc's own, never re-encoded. Requests and responses are
 * grpc.reflection.v1 messages (protobuf-c); v1alpha has the same wire format, so one
 * decoder serves both services. */
#include "reflection.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grpc/reflection/v1/reflection.pb-c.h"

/* Generated at build time from proto/ (CMakeLists.txt). */
extern const unsigned char seq_descriptor_set[];
extern const size_t seq_descriptor_set_len;

typedef struct {
    char *name;
    const uint8_t *data; /* the FileDescriptorProto's bytes, inside seq_descriptor_set */
    size_t len;
    size_t *deps; /* indexes of the files it imports */
    size_t ndeps;
} rfile;

typedef struct {
    char *name; /* fully qualified, no leading dot */
    size_t file;
    int is_message;
} rsym;

struct seq_reflection {
    rfile *files;
    size_t nfiles;
    rsym *syms;
    size_t nsyms, capsyms;
    char **services;
    size_t nservices;
};

/* ------------------------------------------------------------------ protobuf wire */

typedef struct {
    const uint8_t *p, *end;
} pb_rd;

static int pb_varint(pb_rd *r, uint64_t *v)
{
    uint64_t x = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (r->p >= r->end) return -1;
        uint8_t b = *r->p++;
        x |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = x;
            return 0;
        }
    }
    return -1;
}

/* Next field: 1 with its number and, for length-delimited fields, its bytes (val,
 * vlen; others are skipped with val NULL); 0 at the end; -1 when malformed. */
static int pb_next(pb_rd *r, uint32_t *field, const uint8_t **val, size_t *vlen)
{
    uint64_t key, n;
    if (r->p == r->end) return 0;
    if (pb_varint(r, &key) < 0 || (key >> 3) == 0 || (key >> 3) > 0x1fffffff) return -1;
    *field = (uint32_t)(key >> 3);
    *val = NULL;
    *vlen = 0;
    switch (key & 7) {
    case 0: return pb_varint(r, &n) < 0 ? -1 : 1;
    case 1: n = 8; break;
    case 5: n = 4; break;
    case 2:
        if (pb_varint(r, &n) < 0) return -1;
        *val = r->p;
        *vlen = (size_t)n;
        break;
    default: return -1;
    }
    if (n > (uint64_t)(r->end - r->p)) return -1;
    r->p += n;
    return 1;
}

/* The first length-delimited field `want` of a message as a new string, or NULL. */
static char *pb_string(const uint8_t *p, size_t n, uint32_t want)
{
    pb_rd r = {p, p + n};
    uint32_t f;
    const uint8_t *v;
    size_t vl;
    while (pb_next(&r, &f, &v, &vl) == 1)
        if (f == want && v) return strndup((const char *)v, vl);
    return NULL;
}

/* ------------------------------------------------------------------ the index */

static char *join(const char *scope, const char *name)
{
    size_t a = strlen(scope), b = strlen(name);
    char *s = malloc(a + b + 2);
    if (!s) return NULL;
    memcpy(s, scope, a);
    s[a] = '.';
    memcpy(s + a + (a > 0), name, b + 1);
    return s;
}

/* Adds scope.<field 1 of the message p..n> as a symbol; its name in *full (owned by the
 * index) when wanted. */
static int add_sym(seq_reflection *r, size_t file, const char *scope, const uint8_t *p, size_t n,
                   int is_message, const char **full)
{
    char *name = pb_string(p, n, 1);
    char *s = name ? join(scope, name) : NULL;
    free(name);
    if (!s) return -1;
    if (r->nsyms == r->capsyms) {
        size_t cap = r->capsyms ? r->capsyms * 2 : 64;
        rsym *g = realloc(r->syms, cap * sizeof *g);
        if (!g) {
            free(s);
            return -1;
        }
        r->syms = g;
        r->capsyms = cap;
    }
    r->syms[r->nsyms++] = (rsym){s, file, is_message};
    if (full) *full = s;
    return 0;
}

/* Every symbol inside a DescriptorProto (fields 2, nested 3, enums 4, oneofs 8) or a
 * ServiceDescriptorProto (methods 2), whose own name is `full`. */
static int add_members(seq_reflection *r, size_t file, const char *full, const uint8_t *p,
                       size_t n, int is_service)
{
    pb_rd rd = {p, p + n};
    uint32_t f;
    const uint8_t *v;
    size_t vl;
    int rc;
    while ((rc = pb_next(&rd, &f, &v, &vl)) == 1) {
        if (!v) continue;
        const char *nested;
        if (f == 3 && !is_service) {
            if (add_sym(r, file, full, v, vl, 1, &nested) < 0 ||
                add_members(r, file, nested, v, vl, 0) < 0)
                return -1;
        } else if (f == 2 || f == 4 || (f == 8 && !is_service)) {
            if (add_sym(r, file, full, v, vl, 0, NULL) < 0) return -1;
        }
    }
    return rc;
}

/* One FileDescriptorProto: name (1), package (2), dependency (3), message_type (4),
 * enum_type (5), service (6). Dependencies are resolved once all files are known. */
static int add_file(seq_reflection *r, const uint8_t *p, size_t n, char ***depnames)
{
    size_t idx = r->nfiles;
    rfile *file = &r->files[idx];
    *file = (rfile){.name = pb_string(p, n, 1), .data = p, .len = n};
    char *pkg = pb_string(p, n, 2);
    if (!file->name) goto fail;
    r->nfiles++;
    pb_rd rd = {p, p + n};
    uint32_t f;
    const uint8_t *v;
    size_t vl;
    int rc;
    while ((rc = pb_next(&rd, &f, &v, &vl)) == 1) {
        if (!v) continue;
        const char *full;
        if (f == 3) {
            char **d = realloc(depnames[idx], (file->ndeps + 1) * sizeof *d);
            if (!d) goto fail;
            depnames[idx] = d;
            if (!(d[file->ndeps] = strndup((const char *)v, vl))) goto fail;
            file->ndeps++;
        } else if (f == 4 || f == 6) {
            if (add_sym(r, idx, pkg ? pkg : "", v, vl, f == 4, &full) < 0 ||
                add_members(r, idx, full, v, vl, f == 6) < 0)
                goto fail;
        } else if (f == 5) {
            if (add_sym(r, idx, pkg ? pkg : "", v, vl, 0, NULL) < 0) goto fail;
        }
    }
    free(pkg);
    return rc;
fail:
    free(pkg);
    return -1;
}

static long find_file(const seq_reflection *r, const char *name)
{
    for (size_t i = 0; i < r->nfiles; i++)
        if (strcmp(r->files[i].name, name) == 0) return (long)i;
    return -1;
}

static const rsym *find_sym(const seq_reflection *r, const char *name)
{
    if (name[0] == '.') name++; /* ".pkg.Type" as descriptors write type names */
    for (size_t i = 0; i < r->nsyms; i++)
        if (strcmp(r->syms[i].name, name) == 0) return &r->syms[i];
    return NULL;
}

static int index_set(seq_reflection *r, char *err, size_t errlen)
{
    const uint8_t *set = seq_descriptor_set;
    size_t cnt = 0;
    pb_rd rd = {set, set + seq_descriptor_set_len};
    uint32_t f;
    const uint8_t *v;
    size_t vl;
    int rc;
    while ((rc = pb_next(&rd, &f, &v, &vl)) == 1) cnt += f == 1 && v;
    char **depnames[cnt ? cnt : 1];
    memset(depnames, 0, sizeof depnames);
    r->files = calloc(cnt ? cnt : 1, sizeof *r->files);
    if (rc < 0 || !r->files) goto fail;
    rd = (pb_rd){set, set + seq_descriptor_set_len};
    while ((rc = pb_next(&rd, &f, &v, &vl)) == 1)
        if (f == 1 && v && add_file(r, v, vl, depnames) < 0) goto fail;
    if (rc < 0) goto fail;
    for (size_t i = 0; i < r->nfiles; i++) {
        rfile *file = &r->files[i];
        if (file->ndeps && !(file->deps = calloc(file->ndeps, sizeof *file->deps))) goto fail;
        for (size_t d = 0; d < file->ndeps; d++) {
            long k = find_file(r, depnames[i][d]);
            if (k < 0) goto fail; /* --include_imports puts every import in the set */
            file->deps[d] = (size_t)k;
        }
    }
    rc = 0;
    goto out;
fail:
    seq_errf(err, errlen, "reflection: the embedded descriptor set does not parse");
    rc = -1;
out:
    for (size_t i = 0; i < cnt; i++) {
        for (size_t d = 0; depnames[i] && d < r->files[i].ndeps; d++) free(depnames[i][d]);
        free(depnames[i]);
    }
    return rc;
}

/* The distinct services of "/pkg.Service/Method" paths, in order. */
static int index_services(seq_reflection *r, const char *const *paths, size_t n)
{
    if (!(r->services = calloc(n ? n : 1, sizeof *r->services))) return -1;
    for (size_t i = 0; i < n; i++) {
        const char *p = paths[i] + (paths[i][0] == '/'), *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        int seen = 0;
        for (size_t k = 0; k < r->nservices && !seen; k++)
            seen = strlen(r->services[k]) == len && strncmp(r->services[k], p, len) == 0;
        if (seen) continue;
        if (!(r->services[r->nservices] = strndup(p, len))) return -1;
        r->nservices++;
    }
    return 0;
}

int seq_reflection_new(const char *const *paths, size_t n, seq_reflection **out, char *err,
                       size_t errlen)
{
    seq_reflection *r = calloc(1, sizeof *r);
    if (!r) goto oom;
    if (index_set(r, err, errlen) < 0) goto fail;
    if (index_services(r, paths, n) < 0) goto oom;
    *out = r;
    return SEQ_OK;
oom:
    seq_errf(err, errlen, "reflection: out of memory");
fail:
    seq_reflection_free(r);
    return SEQ_EINTERNAL;
}

void seq_reflection_free(seq_reflection *r)
{
    if (!r) return;
    for (size_t i = 0; i < r->nfiles; i++) {
        free(r->files[i].name);
        free(r->files[i].deps);
    }
    free(r->files);
    for (size_t i = 0; i < r->nsyms; i++) free(r->syms[i].name);
    free(r->syms);
    for (size_t i = 0; i < r->nservices; i++) free(r->services[i]);
    free(r->services);
    free(r);
}

/* ------------------------------------------------------------------ answers */

/* The file and its imports, transitively, each once, the file first: into list
 * (r->nfiles entries) and seen. */
static void closure(const seq_reflection *r, size_t f, ProtobufCBinaryData *list, size_t *n,
                    unsigned char *seen)
{
    if (seen[f]) return;
    seen[f] = 1;
    list[(*n)++] = (ProtobufCBinaryData){r->files[f].len, (uint8_t *)r->files[f].data};
    for (size_t d = 0; d < r->files[f].ndeps; d++) closure(r, r->files[f].deps[d], list, n, seen);
}

static void set_error(Grpc__Reflection__V1__ServerReflectionResponse *resp,
                      Grpc__Reflection__V1__ErrorResponse *e, int code, char *msg)
{
    e->error_code = code;
    e->error_message = msg;
    resp->message_response_case =
        GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ERROR_RESPONSE;
    resp->error_response = e;
}

int seq_reflection_answer(const seq_reflection *r, const uint8_t *req, size_t len, seq_buf *out,
                          char *err, size_t errlen)
{
    Grpc__Reflection__V1__ServerReflectionRequest *q =
        grpc__reflection__v1__server_reflection_request__unpack(NULL, len, req);
    if (!q) {
        seq_errf(err, errlen, "request does not decode as grpc.reflection.v1.ServerReflectionRequest");
        return SEQ_EINVAL;
    }
    Grpc__Reflection__V1__ServerReflectionResponse resp =
        GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__INIT;
    Grpc__Reflection__V1__ErrorResponse e = GRPC__REFLECTION__V1__ERROR_RESPONSE__INIT;
    Grpc__Reflection__V1__FileDescriptorResponse fd = GRPC__REFLECTION__V1__FILE_DESCRIPTOR_RESPONSE__INIT;
    Grpc__Reflection__V1__ListServiceResponse ls = GRPC__REFLECTION__V1__LIST_SERVICE_RESPONSE__INIT;
    Grpc__Reflection__V1__ExtensionNumberResponse en =
        GRPC__REFLECTION__V1__EXTENSION_NUMBER_RESPONSE__INIT;
    ProtobufCBinaryData *files = calloc(r->nfiles ? r->nfiles : 1, sizeof *files);
    unsigned char *seen = calloc(r->nfiles ? r->nfiles : 1, 1);
    Grpc__Reflection__V1__ServiceResponse *svc = calloc(r->nservices ? r->nservices : 1, sizeof *svc);
    Grpc__Reflection__V1__ServiceResponse **svcp = calloc(r->nservices ? r->nservices : 1, sizeof *svcp);
    char msg[300];
    int rc = SEQ_EINTERNAL;
    if (!files || !seen || !svc || !svcp) goto out;
    resp.valid_host = q->host;
    resp.original_request = q;
    long file = -1;
    const rsym *sym;
    switch (q->message_request_case) {
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_LIST_SERVICES:
        for (size_t i = 0; i < r->nservices; i++) {
            grpc__reflection__v1__service_response__init(&svc[i]);
            svc[i].name = r->services[i];
            svcp[i] = &svc[i];
        }
        ls.n_service = r->nservices;
        ls.service = svcp;
        resp.message_response_case =
            GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_LIST_SERVICES_RESPONSE;
        resp.list_services_response = &ls;
        break;
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_BY_FILENAME:
        if ((file = find_file(r, q->file_by_filename)) < 0) {
            snprintf(msg, sizeof msg, "file not found: %.200s", q->file_by_filename);
            set_error(&resp, &e, SEQ_ENOTFOUND, msg);
        }
        break;
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_SYMBOL:
        if ((sym = find_sym(r, q->file_containing_symbol))) {
            file = (long)sym->file;
        } else {
            snprintf(msg, sizeof msg, "symbol not found: %.200s", q->file_containing_symbol);
            set_error(&resp, &e, SEQ_ENOTFOUND, msg);
        }
        break;
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_EXTENSION:
        snprintf(msg, sizeof msg, "extension not found: %.200s %d (no file declares extensions)",
                 q->file_containing_extension ? q->file_containing_extension->containing_type : "",
                 q->file_containing_extension ? (int)q->file_containing_extension->extension_number : 0);
        set_error(&resp, &e, SEQ_ENOTFOUND, msg);
        break;
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_ALL_EXTENSION_NUMBERS_OF_TYPE:
        sym = find_sym(r, q->all_extension_numbers_of_type);
        if (sym && sym->is_message) {
            en.base_type_name = sym->name; /* proto3: no extensions, so none */
            resp.message_response_case =
                GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ALL_EXTENSION_NUMBERS_RESPONSE;
            resp.all_extension_numbers_response = &en;
        } else {
            snprintf(msg, sizeof msg, "message type not found: %.200s",
                     q->all_extension_numbers_of_type);
            set_error(&resp, &e, SEQ_ENOTFOUND, msg);
        }
        break;
    default:
        snprintf(msg, sizeof msg, "the request names none of list_services, file_by_filename, "
                                  "file_containing_symbol, file_containing_extension, "
                                  "all_extension_numbers_of_type");
        set_error(&resp, &e, SEQ_EINVAL, msg);
    }
    if (file >= 0) {
        closure(r, (size_t)file, files, &fd.n_file_descriptor_proto, seen);
        fd.file_descriptor_proto = files;
        resp.message_response_case =
            GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_FILE_DESCRIPTOR_RESPONSE;
        resp.file_descriptor_response = &fd;
    }
    /* original_request echoes the known fields only: protobuf-c keeps unknown ones
     * verbatim, and one it let through (field number 0) would make the whole response
     * undecodable for the client. */
    Grpc__Reflection__V1__ExtensionRequest *x =
        q->message_request_case ==
                GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_EXTENSION
            ? q->file_containing_extension
            : NULL;
    unsigned n_unknown = q->base.n_unknown_fields, nx_unknown = x ? x->base.n_unknown_fields : 0;
    q->base.n_unknown_fields = 0;
    if (x) x->base.n_unknown_fields = 0;
    size_t n = grpc__reflection__v1__server_reflection_response__get_packed_size(&resp);
    if (seq_buf_reserve(out, n) == 0) {
        out->len += grpc__reflection__v1__server_reflection_response__pack(&resp,
                                                                            out->data + out->len);
        rc = SEQ_OK;
    }
    q->base.n_unknown_fields = n_unknown;
    if (x) x->base.n_unknown_fields = nx_unknown;
out:
    if (rc != SEQ_OK) seq_errf(err, errlen, "reflection: out of memory");
    free(files);
    free(seen);
    free(svc);
    free(svcp);
    grpc__reflection__v1__server_reflection_request__free_unpacked(q, NULL);
    return rc;
}

int seq_reflection_stream(void *ctx, seq_grpc_call *call, const uint8_t *msg, size_t len,
                          char *err, size_t errlen)
{
    seq_buf resp = {0};
    int rc = seq_reflection_answer(ctx, msg, len, &resp, err, errlen);
    if (rc == SEQ_OK && (rc = seq_grpc_stream_send(call, resp.data, resp.len)) != SEQ_OK)
        seq_errf(err, errlen, "reflection response of %zu bytes not sent", resp.len);
    seq_buf_free(&resp);
    return rc;
}

/* libFuzzer entry for what describes a batch on disk (storage/batch_file.c,
 * storage/batch_parts.c): a part's or a batch's manifest.json, the partitioned batch's
 * batch.json and the --only-partitions list. Input: byte 0 picks the parser (mod 3:
 * manifest, batch.json, partition list; for the list, byte 1 is P - 1), the rest is the
 * text. A parse that succeeds must give values inside their bounds. Seeds:
 * tests/fuzz/corpus_batch_manifest/. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/common.h"
#include "storage/batch_file.h"
#include "storage/batch_parts.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[512];
    if (size < 2) return 0;
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    if (data[0] % 3 == 0) {
        seq_batch_manifest m;
        if (seq_batch_manifest_parse(text, len, "manifest.json", &m, err, sizeof err) == SEQ_OK) {
            if (!m.files || !m.def || (m.partitions && m.partition >= m.partitions) ||
                m.partitions > SEQ_PARTS_MAX)
                abort();
            size_t i;
            json_t *o;
            json_array_foreach(m.files, i, o) {
                seq_batch_file_info fi;
                if (seq_batch_file_from_json(o, &fi, err, sizeof err) == SEQ_OK &&
                    (fi.first_key_len > sizeof fi.first_key || fi.last_key_len > sizeof fi.last_key))
                    abort();
            }
        }
        seq_batch_manifest_clear(&m);
    } else if (data[0] % 3 == 1) {
        seq_batch_desc d;
        if (seq_batch_desc_parse(text, len, &d, err, sizeof err) == SEQ_OK &&
            (d.partitions < 1 || d.partitions > SEQ_PARTS_MAX || strlen(d.fingerprint) != 16))
            abort();
    } else {
        uint32_t p = (uint32_t)data[1] + 1;
        char list[256];
        uint8_t sel[256];
        size_t n = len - 1 < sizeof list - 1 ? len - 1 : sizeof list - 1;
        memcpy(list, text + 1, n);
        list[n] = '\0';
        if (seq_parts_parse_list(list, p, sel, err, sizeof err) == SEQ_OK) {
            int any = 0;
            for (uint32_t i = 0; i < p; i++) any |= sel[i];
            if (!any) abort();
        }
    }
    return 0;
}

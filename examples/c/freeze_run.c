/* freeze_run: load a frozen TensorFlow graph (.pb) with the TensorFlow C API, feed it, print its outputs.
 *
 *   freeze_run MODEL.pb [--in NAME DTYPE D0,D1,... FILE.bin]... [--out NAME]...
 *
 * NAME is a node name as freezekeras printed it (`point`, `class_probs/Softmax`), or `node:N` for an
 * op's later output. DTYPE is float32, int32 or int64; FILE.bin holds the values, raw, in C order
 * (numpy's `array.astype("float32").tofile("x.bin")`). For each output it prints one header line,
 * `output NAME DTYPE D0,D1,...`, then the values one per line (%.9g: float32 exactly).
 * Exit code 0 on success, 1 on a TensorFlow error, 2 on a usage error; errors go to stderr.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tensorflow/c/c_api.h"

#define MAX_TENSORS 64
#define MAX_DIMS 8

struct input {
    const char *name, *file;
    TF_DataType dtype;
    int64_t dims[MAX_DIMS];
    int ndims;
};

static void *read_file(const char *path, size_t *size) {
    FILE *file = fopen(path, "rb");
    if (!file) return NULL;
    fseek(file, 0, SEEK_END);
    long length = ftell(file);
    fseek(file, 0, SEEK_SET);
    void *data = malloc(length > 0 ? (size_t)length : 1);
    if (data && fread(data, 1, (size_t)length, file) != (size_t)length) { free(data); data = NULL; }
    fclose(file);
    *size = (size_t)length;
    return data;
}

static int parse_dtype(const char *text, TF_DataType *dtype) {
    if (!strcmp(text, "float32")) *dtype = TF_FLOAT;
    else if (!strcmp(text, "int32")) *dtype = TF_INT32;
    else if (!strcmp(text, "int64")) *dtype = TF_INT64;
    else return 0;
    return 1;
}

/* "node" or "node:N" -> the graph's output; 0 if there is no such node. */
static int find_output(TF_Graph *graph, const char *name, TF_Output *out) {
    char node[1024];
    int index = 0;
    snprintf(node, sizeof node, "%s", name);
    char *colon = strrchr(node, ':');
    if (colon) { index = atoi(colon + 1); *colon = '\0'; }
    out->oper = TF_GraphOperationByName(graph, node);
    out->index = index;
    return out->oper != NULL;
}

static void print_tensor(const char *name, TF_Tensor *tensor) {
    int ndims = TF_NumDims(tensor);
    int64_t count = 1;
    TF_DataType dtype = TF_TensorType(tensor);
    printf("output %s %s ", name, dtype == TF_FLOAT ? "float32" : dtype == TF_INT32 ? "int32"
                                  : dtype == TF_INT64 ? "int64" : "other");
    for (int i = 0; i < ndims; i++) {
        printf(i ? ",%lld" : "%lld", (long long)TF_Dim(tensor, i));
        count *= TF_Dim(tensor, i);
    }
    printf("\n");
    const void *data = TF_TensorData(tensor);
    for (int64_t i = 0; i < count; i++) {
        if (dtype == TF_FLOAT) printf("%.9g\n", ((const float *)data)[i]);
        else if (dtype == TF_INT32) printf("%d\n", ((const int32_t *)data)[i]);
        else if (dtype == TF_INT64) printf("%lld\n", (long long)((const int64_t *)data)[i]);
    }
}

static int usage(void) {
    fprintf(stderr, "usage: freeze_run MODEL.pb [--in NAME DTYPE D0,D1,... FILE.bin]... [--out NAME]...\n");
    return 2;
}

int main(int argc, char **argv) {
    struct input inputs[MAX_TENSORS];
    const char *outputs[MAX_TENSORS];
    int n_in = 0, n_out = 0;

    if (argc < 2 || !strcmp(argv[1], "--version")) {
        printf("TensorFlow %s\n", TF_Version());
        return argc < 2 ? usage() : 0;
    }
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--in") && i + 4 < argc && n_in < MAX_TENSORS) {
            struct input *in = &inputs[n_in++];
            in->name = argv[i + 1];
            if (!parse_dtype(argv[i + 2], &in->dtype)) return usage();
            in->ndims = 0;
            for (char *dim = strtok(argv[i + 3], ","); dim && in->ndims < MAX_DIMS; dim = strtok(NULL, ","))
                in->dims[in->ndims++] = atoll(dim);
            in->file = argv[i + 4];
            i += 4;
        } else if (!strcmp(argv[i], "--out") && i + 1 < argc && n_out < MAX_TENSORS) {
            outputs[n_out++] = argv[++i];
        } else {
            return usage();
        }
    }

    size_t size;
    void *bytes = read_file(argv[1], &size);
    if (!bytes) { fprintf(stderr, "freeze_run: cannot read %s\n", argv[1]); return 1; }
    TF_Buffer *buffer = TF_NewBufferFromString(bytes, size);
    free(bytes);
    TF_Graph *graph = TF_NewGraph();
    TF_Status *status = TF_NewStatus();
    TF_ImportGraphDefOptions *import_options = TF_NewImportGraphDefOptions();
    TF_GraphImportGraphDef(graph, buffer, import_options, status);
    TF_DeleteImportGraphDefOptions(import_options);
    TF_DeleteBuffer(buffer);
    if (TF_GetCode(status) != TF_OK) {
        fprintf(stderr, "freeze_run: cannot import %s: %s\n", argv[1], TF_Message(status));
        return 1;
    }

    TF_Output feeds[MAX_TENSORS], fetches[MAX_TENSORS];
    TF_Tensor *values[MAX_TENSORS], *results[MAX_TENSORS];
    for (int i = 0; i < n_in; i++) {
        if (!find_output(graph, inputs[i].name, &feeds[i])) {
            fprintf(stderr, "freeze_run: no node %s in the graph\n", inputs[i].name);
            return 1;
        }
        size_t want = TF_DataTypeSize(inputs[i].dtype);
        for (int d = 0; d < inputs[i].ndims; d++) want *= (size_t)inputs[i].dims[d];
        void *data = read_file(inputs[i].file, &size);
        if (!data || size != want) {
            fprintf(stderr, "freeze_run: %s: expected %zu bytes for %s\n", inputs[i].file, want, inputs[i].name);
            return 2;
        }
        values[i] = TF_AllocateTensor(inputs[i].dtype, inputs[i].dims, inputs[i].ndims, want);
        memcpy(TF_TensorData(values[i]), data, want);
        free(data);
    }
    for (int i = 0; i < n_out; i++) {
        if (!find_output(graph, outputs[i], &fetches[i])) {
            fprintf(stderr, "freeze_run: no node %s in the graph\n", outputs[i]);
            return 1;
        }
    }

    TF_SessionOptions *session_options = TF_NewSessionOptions();
    TF_Session *session = TF_NewSession(graph, session_options, status);
    TF_DeleteSessionOptions(session_options);
    if (TF_GetCode(status) != TF_OK) {
        fprintf(stderr, "freeze_run: cannot start a session: %s\n", TF_Message(status));
        return 1;
    }
    TF_SessionRun(session, NULL, feeds, values, n_in, fetches, results, n_out, NULL, 0, NULL, status);
    if (TF_GetCode(status) != TF_OK) {
        fprintf(stderr, "freeze_run: running the graph failed: %s\n", TF_Message(status));
        return 1;
    }
    for (int i = 0; i < n_out; i++) {
        print_tensor(outputs[i], results[i]);
        TF_DeleteTensor(results[i]);
    }
    for (int i = 0; i < n_in; i++) TF_DeleteTensor(values[i]);
    TF_CloseSession(session, status);
    TF_DeleteSession(session, status);
    TF_DeleteGraph(graph);
    TF_DeleteStatus(status);
    return 0;
}

# Turns a binary file into C: `const unsigned char NAME[]` and `const size_t NAME_len`.
# cmake -DIN=file -DOUT=file.c -DNAME=symbol -P bin2c.cmake (CMakeLists.txt uses it to
# embed protoc's descriptor set of proto/ for gRPC server reflection).
file(READ "${IN}" hex HEX)
string(LENGTH "${hex}" n)
math(EXPR len "${n} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," body "${hex}")
string(REGEX REPLACE "((0x[0-9a-f][0-9a-f],){16})" "\\1\n" body "${body}")
file(WRITE "${OUT}" "/* Generated from ${IN} by cmake/bin2c.cmake: do not edit. */\n#include <stddef.h>\nconst unsigned char ${NAME}[] = {\n${body}\n};\nconst size_t ${NAME}_len = ${len};\n")

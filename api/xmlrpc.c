/* SPDX-License-Identifier: LGPL-2.1-only */
/* XML-RPC <-> the JSON-RPC dispatcher, with ocaml-rpc's encoding (see xmlrpc.h). */
#include "api/xmlrpc.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/tree.h>

#include "api/api.h"
#include "common/limits.h"
#include "common/parse.h"
#include "common/log.h"
#include "common/xalloc.h"

static pthread_once_t init_once = PTHREAD_ONCE_INIT;

static void init_parser(void)
{
    xmlInitParser();
}

/* ---- growing buffer ------------------------------------------------------------------ */

struct buf {
    char *p;
    size_t len, cap;
};

static void put_n(struct buf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap != 0 ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        b->p = xreallocarray(b->p, cap, 1);
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void put(struct buf *b, const char *s)
{
    put_n(b, s, strlen(s));
}

/* ocaml-rpc's encode_buf: > < & " escaped, bytes below 0x20 other than tab, LF, CR
 * dropped, everything else as it is. */
static void put_text(struct buf *b, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '>':
            put(b, "&gt;");
            break;
        case '<':
            put(b, "&lt;");
            break;
        case '&':
            put(b, "&amp;");
            break;
        case '"':
            put(b, "&quot;");
            break;
        default:
            if (c >= 0x20 || c == '\t' || c == '\n' || c == '\r')
                put_n(b, (const char *)&s[i], 1);
            break;
        }
    }
}

/* ---- JSON -> XML values ------------------------------------------------------------ */

static void put_value(struct buf *b, const json_t *v)
{
    char num[64];
    switch (json_typeof(v)) {
    case JSON_STRING:
        put(b, "<value>");
        put_text(b, json_string_value(v), json_string_length(v));
        put(b, "</value>");
        break;
    case JSON_INTEGER: /* Rpc.Int, not strict: untyped */
        snprintf(num, sizeof(num), "<value>%" JSON_INTEGER_FORMAT "</value>",
                 json_integer_value(v));
        put(b, num);
        break;
    case JSON_REAL:
        snprintf(num, sizeof(num), "<value><double>%.16g</double></value>", json_real_value(v));
        put(b, num);
        break;
    case JSON_TRUE:
        put(b, "<value><boolean>1</boolean></value>");
        break;
    case JSON_FALSE:
        put(b, "<value><boolean>0</boolean></value>");
        break;
    case JSON_NULL:
        put(b, "<value><nil/></value>");
        break;
    case JSON_ARRAY: {
        size_t i;
        json_t *e;
        put(b, "<value><array><data>");
        json_array_foreach(v, i, e) put_value(b, e);
        put(b, "</data></array></value>");
        break;
    }
    case JSON_OBJECT: {
        const char *k;
        json_t *e;
        put(b, "<value><struct>");
        json_object_foreach((json_t *)v, k, e)
        {
            put(b, "<member><name>");
            put_text(b, k, strlen(k));
            put(b, "</name>");
            put_value(b, e);
            put(b, "</member>");
        }
        put(b, "</struct></value>");
        break;
    }
    }
}

static char *response(bool success, const json_t *contents)
{
    struct buf b = {0};
    put(&b, "<?xml version=\"1.0\"?><methodResponse><params><param><value><struct>");
    put(&b, "<member><name>Status</name><value>");
    put(&b, success ? "Success" : "Failure");
    put(&b, "</value></member><member><name>");
    put(&b, success ? "Value" : "ErrorDescription");
    put(&b, "</name>");
    put_value(&b, contents);
    put(&b, "</member></struct></value></param></params></methodResponse>");
    return b.p;
}

char *xmlrpc_internal_error(const char *text)
{
    json_t *v = json_pack("[ss]", "Internal_error", text);
    if (v == NULL) /* not UTF-8: say less */
        v = json_pack("[ss]", "Internal_error", "invalid request");
    char *r = response(false, v);
    json_decref(v);
    return r;
}

char *xmlrpc_reply_from_json(const char *json_reply)
{
    json_t *r = json_loads(json_reply, 0, NULL);
    json_t *e = json_object_get(r, "error");
    char *out;

    if (!json_is_object(r)) {
        out = xmlrpc_internal_error("the dispatcher gave no reply");
    } else if (e != NULL && !json_is_null(e)) {
        /* JSON-RPC 2.0 error objects never come here: requests are made v1. */
        out = response(false, e);
    } else {
        json_t *res = json_object_get(r, "result");
        json_t *null = json_null();
        out = response(true, res != NULL ? res : null);
        json_decref(null);
    }
    json_decref(r);
    return out;
}

/* ---- XML -> JSON values ------------------------------------------------------------ */

static bool is_el(const xmlNode *n, const char *name)
{
    return n != NULL && n->type == XML_ELEMENT_NODE && strcmp((const char *)n->name, name) == 0;
}

static bool is_blank(const xmlChar *s)
{
    for (; s != NULL && *s != '\0'; s++)
        if (*s != ' ' && *s != '\t' && *s != '\n' && *s != '\r')
            return false;
    return true;
}

/* The text of an element (text and CDATA children); NULL (with *err) if it has element
 * or entity children. New string. */
static char *text_of(const xmlNode *n, char **err)
{
    struct buf b = {0};
    put(&b, "");
    for (const xmlNode *c = n->children; c != NULL; c = c->next) {
        if (c->type == XML_TEXT_NODE || c->type == XML_CDATA_SECTION_NODE) {
            put(&b, (const char *)c->content);
        } else if (c->type == XML_COMMENT_NODE || c->type == XML_PI_NODE) {
            continue;
        } else {
            *err = xasprintf("<%s> holds <%s> where text was expected", (const char *)n->name,
                             c->name != NULL ? (const char *)c->name : "?");
            free(b.p);
            return NULL;
        }
    }
    return b.p;
}

/* The element children, with blank text between them allowed. */
static int elements_of(const xmlNode *n, const xmlNode ***out, size_t *count, char **err)
{
    size_t k = 0, cap = 0;
    const xmlNode **list = NULL;
    for (const xmlNode *c = n->children; c != NULL; c = c->next) {
        if (c->type == XML_ELEMENT_NODE) {
            if (k == cap) {
                cap = cap ? cap * 2 : 8;
                list = xreallocarray(list, cap, sizeof(*list));
            }
            list[k++] = c;
        } else if ((c->type == XML_TEXT_NODE || c->type == XML_CDATA_SECTION_NODE) &&
                   !is_blank(c->content)) {
            *err = xasprintf("text in <%s> where only elements may be", (const char *)n->name);
            free(list);
            return -1;
        } else if (c->type != XML_TEXT_NODE && c->type != XML_CDATA_SECTION_NODE &&
                   c->type != XML_COMMENT_NODE && c->type != XML_PI_NODE) {
            *err = xasprintf("unexpected node in <%s>", (const char *)n->name);
            free(list);
            return -1;
        }
    }
    *out = list;
    *count = k;
    return 0;
}

static json_t *value_of(const xmlNode *v, int depth, char **err);

static json_t *typed_of(const xmlNode *t, int depth, char **err)
{
    const char *tag = (const char *)t->name;
    json_t *out = NULL;
    char *text = NULL;

    if (strcmp(tag, "array") == 0 || strcmp(tag, "struct") == 0) {
        const xmlNode **kids = NULL;
        size_t n = 0;
        if (elements_of(t, &kids, &n, err) < 0)
            return NULL;
        if (strcmp(tag, "array") == 0) {
            out = json_array();
            const xmlNode **vals = NULL;
            size_t nv = 0;
            if (n > 1 || (n == 1 && !is_el(kids[0], "data"))) {
                *err = xasprintf("<array> must hold one <data>");
                goto bad;
            }
            if (n == 1 && elements_of(kids[0], &vals, &nv, err) < 0)
                goto bad;
            for (size_t i = 0; i < nv; i++) {
                json_t *e = is_el(vals[i], "value") ? value_of(vals[i], depth + 1, err) : NULL;
                if (e == NULL) {
                    if (*err == NULL)
                        *err = xasprintf("<data> holds <%s>, not <value>", vals[i]->name);
                    free(vals);
                    goto bad;
                }
                json_array_append_new(out, e);
            }
            free(vals);
        } else {
            out = json_object();
            for (size_t i = 0; i < n; i++) {
                const xmlNode **mk = NULL;
                size_t nm = 0;
                if (!is_el(kids[i], "member") || elements_of(kids[i], &mk, &nm, err) < 0 ||
                    nm != 2 || !is_el(mk[0], "name") || !is_el(mk[1], "value")) {
                    if (*err == NULL)
                        *err = xasprintf("a <struct> member must be <name> then <value>");
                    free(mk);
                    goto bad;
                }
                char *name = text_of(mk[0], err);
                json_t *e = name != NULL ? value_of(mk[1], depth + 1, err) : NULL;
                free(mk);
                if (e == NULL) {
                    free(name);
                    goto bad;
                }
                json_object_set_new(out, name, e);
                free(name);
            }
        }
        free(kids);
        return out;
    bad:
        free(kids);
        json_decref(out);
        return NULL;
    }
    if (strcmp(tag, "nil") == 0)
        return json_null();
    text = text_of(t, err);
    if (text == NULL)
        return NULL;
    if (strcmp(tag, "int") == 0 || strcmp(tag, "i4") == 0 || strcmp(tag, "i8") == 0) {
        int64_t n;
        if (parse_int64(text, INT64_MIN, INT64_MAX, &n) < 0)
            *err = xasprintf("<%s>%.40s</%s> is not an integer", tag, text, tag);
        else
            out = json_integer(n);
    } else if (strcmp(tag, "boolean") == 0) {
        out = json_boolean(strcmp(text, "1") == 0); /* as ocaml-rpc: "1" or false */
    } else if (strcmp(tag, "double") == 0) {
        char *end;
        double d = strtod(text, &end);
        if (end == text || *end != '\0')
            *err = xasprintf("<double>%.40s</double> is not a number", text);
        else
            out = json_real(d);
    } else if (strcmp(tag, "string") == 0 || strcmp(tag, "dateTime.iso8601") == 0 ||
               strcmp(tag, "base64") == 0) {
        out = json_string(text);
        if (out == NULL)
            *err = xasprintf("a string that is not UTF-8");
    } else {
        *err = xasprintf("unknown value type <%s>", tag);
    }
    free(text);
    return out;
}

/* <value>: untyped text is a string; else exactly one typed element. */
static json_t *value_of(const xmlNode *v, int depth, char **err)
{
    if (depth > LIMIT_XMLRPC_DEPTH_MAX) {
        *err = xasprintf("values nested deeper than %d", LIMIT_XMLRPC_DEPTH_MAX);
        return NULL;
    }
    bool has_el = false;
    for (const xmlNode *c = v->children; c != NULL; c = c->next)
        has_el |= c->type == XML_ELEMENT_NODE;
    if (!has_el) {
        char *text = text_of(v, err);
        if (text == NULL)
            return NULL;
        json_t *s = json_string(text);
        free(text);
        if (s == NULL)
            *err = xasprintf("a string that is not UTF-8");
        return s;
    }
    const xmlNode **kids = NULL;
    size_t n = 0;
    if (elements_of(v, &kids, &n, err) < 0)
        return NULL;
    json_t *out = NULL;
    if (n != 1)
        *err = xasprintf("<value> holds %zu elements", n);
    else
        out = typed_of(kids[0], depth, err);
    free(kids);
    return out;
}

/* ocaml-rpc's typed unmarshallers take "42" for an int64 or int: do the same for the
 * positions where the dispatcher wants a number. */
static json_t *coerce(json_t *v, enum api_param_kind kind)
{
    if (json_is_string(v) && (kind == API_PARAM_INT || kind == API_PARAM_NUMBER)) {
        const char *s = json_string_value(v);
        int64_t n;
        if (parse_int64(s, INT64_MIN, INT64_MAX, &n) == 0) {
            json_decref(v);
            return json_integer(n);
        }
        if (kind == API_PARAM_NUMBER) {
            char *end;
            double d = strtod(s, &end);
            if (end != s && *end == '\0') {
                json_decref(v);
                return json_real(d);
            }
        }
        return v; /* left as it is: the dispatcher says what is wrong */
    }
    if (json_is_object(v) && kind == API_PARAM_OBJECT) {
        const char *k;
        json_t *e;
        json_object_foreach(v, k, e)
        {
            if (json_is_string(e) || json_is_object(e))
                json_object_set_new(v, k,
                                    coerce(json_incref(e), json_is_object(e) ? API_PARAM_OBJECT
                                                                             : API_PARAM_INT));
        }
    }
    return v;
}

char *xmlrpc_request_to_json(const char *xml, size_t len, char **err)
{
    xmlDoc *doc = NULL;
    json_t *params = NULL;
    char *name = NULL;
    char *out = NULL;
    const xmlNode **top = NULL, **ps = NULL;
    size_t ntop = 0, nps = 0;

    *err = NULL;
    pthread_once(&init_once, init_parser);
    if (len > (size_t)API_MAX_BODY_BYTES || len > (size_t)INT32_MAX) {
        *err = xasprintf("request body larger than %d bytes", API_MAX_BODY_BYTES);
        goto out;
    }
    doc = xmlReadMemory(xml, (int)len, NULL, NULL,
                        XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    if (doc == NULL) {
        const xmlError *e = xmlGetLastError();
        *err = xasprintf("not XML: %s", e != NULL && e->message != NULL ? e->message : "?");
        if (*err != NULL && (*err)[0] != '\0' && (*err)[strlen(*err) - 1] == '\n')
            (*err)[strlen(*err) - 1] = '\0';
        goto out;
    }
    if (doc->intSubset != NULL || doc->extSubset != NULL) {
        *err = xasprintf("a document type declaration is not accepted");
        goto out;
    }
    xmlNode *root = xmlDocGetRootElement(doc);
    if (!is_el(root, "methodCall")) {
        *err = xasprintf("not an XML-RPC methodCall");
        goto out;
    }
    if (elements_of(root, &top, &ntop, err) < 0)
        goto out;
    if (ntop < 1 || ntop > 2 || !is_el(top[0], "methodName") ||
        (ntop == 2 && !is_el(top[1], "params"))) {
        *err = xasprintf("a methodCall must hold <methodName> and <params>");
        goto out;
    }
    name = text_of(top[0], err);
    if (name == NULL)
        goto out;
    params = json_array();
    if (ntop == 2 && elements_of(top[1], &ps, &nps, err) < 0)
        goto out;
    for (size_t i = 0; i < nps; i++) {
        const xmlNode **pv = NULL;
        size_t npv = 0;
        if (!is_el(ps[i], "param") || elements_of(ps[i], &pv, &npv, err) < 0 || npv != 1 ||
            !is_el(pv[0], "value")) {
            if (*err == NULL)
                *err = xasprintf("each <param> must hold one <value>");
            free(pv);
            goto out;
        }
        json_t *v = value_of(pv[0], 0, err);
        free(pv);
        if (v == NULL)
            goto out;
        json_array_append_new(params, coerce(v, api_param_kind(name, i, nps)));
    }
    json_t *req = json_pack("{s:s, s:O, s:i}", "method", name, "params", params, "id", 0);
    if (req == NULL) {
        *err = xasprintf("a method name that is not UTF-8");
        goto out;
    }
    out = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    if (out == NULL)
        abort();
out:
    free(top);
    free(ps);
    free(name);
    json_decref(params);
    xmlFreeDoc(doc);
    return out;
}

char *xmlrpc_handle(struct service *svc, const char *body, size_t len)
{
    char *err = NULL;
    char *req = xmlrpc_request_to_json(body, len, &err);
    if (req == NULL) {
        log_debug("xml-rpc: %s", err);
        char *r = xmlrpc_internal_error(err);
        free(err);
        return r;
    }
    int status = 0;
    char *reply = api_handle_rpc(svc, req, strlen(req), &status);
    char *out = xmlrpc_reply_from_json(reply);
    free(reply);
    free(req);
    return out;
}

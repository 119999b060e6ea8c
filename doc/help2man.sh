#!/bin/sh
# Writes the man page nngen.1 to stdout from the program's own --help and
# --version output, so the two never disagree.  Used by doc/meson.build.
#
#   help2man.sh PROGRAM "one-line summary for NAME"
#
# The --help text is read as: an unindented "Heading:" line starts a section
# ("Usage" becomes SYNOPSIS); "Heading: text" is a section with a paragraph;
# an indented "TERM  description" line (two or more spaces between) is a
# tagged paragraph, and a line indented deeper than the last term continues
# its description.  In terms, the program name and options are set in bold,
# capitalized placeholders (SPEC.yaml, FILE) in italics.
set -eu
if [ $# -ne 2 ]; then
    echo "usage: $0 PROGRAM SUMMARY" >&2
    exit 2
fi
prog=$1
summary=$2
name=$(basename "$prog")
help=$("$prog" --help)
version=$("$prog" --version)

printf '%s\n' "$help" | awk -v name="$name" -v summary="$summary" -v version="$version" '
function esc(s) {
    gsub(/\\/, "\\e", s)
    gsub(/-/, "\\-", s)
    if (s ~ /^[.'\'']/) s = "\\&" s
    return s
}
function term(s,    n, i, a, w, pre, post, out) {
    n = split(s, a, / +/)
    out = ""
    for (i = 1; i <= n; i++) {
        w = a[i]; pre = ""; post = ""
        while (w ~ /^[[(]/) { pre = pre substr(w, 1, 1); w = substr(w, 2) }
        while (w ~ /[])]$/) { post = substr(w, length(w)) post; w = substr(w, 1, length(w) - 1) }
        if (w == name || w ~ /^-/) w = "\\fB" esc(w) "\\fR"
        else if (w ~ /^[A-Z]/) w = "\\fI" esc(w) "\\fR"
        else w = esc(w)
        out = out (i > 1 ? " " : "") pre w post
    }
    if (out ~ /^[.'\'']/) out = "\\&" out
    return out
}
function section(h) {
    h = toupper(h)
    if (h == "USAGE") h = "SYNOPSIS"
    printf ".SH %s\n", (h ~ / / ? "\"" h "\"" : h)
    termindent = -1
    para = 0
}
BEGIN {
    print ".\\\" Generated from `" name " --help` by doc/help2man.sh: do not edit."
    printf ".TH %s 1 \"\" \"%s\" \"User Commands\"\n", toupper(name), version
    print ".SH NAME"
    print name " \\- " esc(summary)
    termindent = -1
    para = 0
}
/^[ \t]*$/ { para = 1; termindent = -1; next }
/^[^ \t].*:$/ { section(substr($0, 1, length($0) - 1)); next }
/^[^ \t][^:]*: / {
    i = index($0, ": ")
    section(substr($0, 1, i - 1))
    print esc(substr($0, i + 2))
    next
}
/^[^ \t]/ { if (para) print ".PP"; para = 0; print esc($0); termindent = -1; next }
{
    match($0, /^[ \t]+/)
    ind = RLENGTH
    text = substr($0, ind + 1)
    if (termindent >= 0 && ind > termindent) { print esc(text); next }
    termindent = ind
    print ".TP"
    if (match(text, /  +/)) {
        print term(substr(text, 1, RSTART - 1))
        print esc(substr(text, RSTART + RLENGTH))
    } else {
        print term(text)
    }
}
'

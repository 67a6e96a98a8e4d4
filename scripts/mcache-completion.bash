# mcache-completion.bash - bash completion for mcache, the operator CLI.
#
# Install: source it from ~/.bashrc, or copy it to
# /usr/share/bash-completion/completions/mcache.
#
# Completes commands, each command's options, option values (directories,
# --sort and --status words, cache names found in the shm directory), model
# names, and NAME@VERSION after an '@', asking `mcache ls --short` with the
# --store given on the line so far (or $MCACHE_STORE).

_mcache_global_opts="--store --registry --cache --shm-dir --socket --artifacts --json --quiet -q --help -h"
_mcache_commands="init push ls show alias rollback history rm gc fsck verify load evict pin unpin stat stats compare snapshot health deploy deployments alerts token audit db help"

_mcache_cmd_opts() {
    case "$1" in
    push) echo "--metric --param --tag --desc --framework --precision --device --parent --source --alias --no-gate --preload --pin" ;;
    ls) echo "--tag --where --ref --status --sort --limit --short" ;;
    rm) echo "--force -f" ;;
    gc) echo "--keep --max-age --dry-run -n" ;;
    fsck) echo "--repair --checksums" ;;
    verify) echo "--all -a --resident" ;;
    load) echo "--timeout" ;;
    alias) echo "--why --no-gate" ;;
    health) echo "--timeout" ;;
    deploy) echo "--alias -a --strategy --steps --interval --max-error-rate --max-p99-ratio --min-requests --health-timeout --status --pause --resume --abort" ;;
    alerts) echo "--kind --limit -n" ;;
    snapshot) echo "--no-gate" ;;
    token) echo "--role -r" ;;
    audit) echo "--model -m --limit -n" ;;
    esac
}

# COMPREPLY from compgen's lines (names with spaces stay whole).
_mcache_reply() {
    mapfile -t COMPREPLY < <(compgen "$@")
}

# Cache names: the arenas (mcache.<cache>, no suffix) in a shm directory.
_mcache_caches() {
    local f
    for f in "$1"/mcache.*; do
        f=${f##*/mcache.}
        [[ -e "$1/mcache.$f" && $f != *.* ]] && echo "$f"
    done
}

# The value of a global option given earlier on the line, for helper calls.
_mcache_line_opt() {
    local i
    for ((i = 1; i < COMP_CWORD; i++)); do
        if [[ ${COMP_WORDS[i]} == "$1" ]]; then
            echo "${COMP_WORDS[i + 1]}"
            return
        fi
        if [[ ${COMP_WORDS[i]} == "$1="* ]]; then
            echo "${COMP_WORDS[i]#*=}"
            return
        fi
    done
}

# name@version of every registered version (quietly nothing without a store).
_mcache_refs() {
    local store registry
    local -a where=()
    store=$(_mcache_line_opt --store)
    # from the line itself: readline splits a URL's "postgres://" at the ':'
    [[ $COMP_LINE =~ --registry[=\ ]+([^ ]+) ]] && registry=${BASH_REMATCH[1]}
    [[ -n $store ]] && where+=(--store "$store")
    [[ -n $registry ]] && where+=(--registry "$registry")
    mcache "${where[@]}" ls --short "$@" 2>/dev/null
}

# Complete NAME, or NAME@VERSION once an '@' is typed.
_mcache_complete_ref() {
    local cur=$1 refs
    if [[ $cur == *@* ]]; then
        refs=$(_mcache_refs "${cur%%@*}")
        _mcache_reply -W "$refs ${cur%%@*}@latest" -- "$cur"
    else
        refs=$(_mcache_refs | sed 's/@.*//' | uniq)
        _mcache_reply -W "$refs" -- "$cur"
    fi
}

_mcache() {
    local cur prev cmd i npos=0 shm
    cur=${COMP_WORDS[COMP_CWORD]}
    prev=${COMP_WORDS[COMP_CWORD - 1]}

    # Values of options.
    case "$prev" in
    --store | --shm-dir)
        _mcache_reply -d -- "$cur"
        return
        ;;
    --socket)
        _mcache_reply -f -- "$cur"
        return
        ;;
    --cache)
        shm=$(_mcache_line_opt --shm-dir)
        _mcache_reply -W "$(_mcache_caches "${shm:-${MCACHE_SHM_DIR:-/dev/shm}}")" -- "$cur"
        return
        ;;
    --sort)
        _mcache_reply -W "version time" -- "$cur"
        return
        ;;
    --status)
        _mcache_reply -W "ready failed archived registering" -- "$cur"
        return
        ;;
    --role)
        _mcache_reply -W "reader publisher admin" -- "$cur"
        return
        ;;
    --model)
        _mcache_reply -W "$(_mcache_refs | sed 's/@.*//' | uniq)" -- "$cur"
        return
        ;;
    --metric | --param | --tag | --desc | --framework | --precision | --device | --source | \
        --alias | --where | --ref | --limit | --keep | --max-age | --timeout | --registry)
        return
        ;;
    --parent)
        _mcache_complete_ref "$cur"
        return
        ;;
    esac

    # Find the command and count its positionals so far.
    for ((i = 1; i < COMP_CWORD; i++)); do
        case "${COMP_WORDS[i]}" in
        --store | --registry | --cache | --shm-dir | --socket | --artifacts | --metric | --param | --tag | --desc | \
            --framework | --precision | --device | --parent | --source | --alias | --where | \
            --ref | --status | --sort | --limit | --keep | --max-age | --timeout | --role | --model)
            ((i++))
            ;;
        -*) ;;
        *)
            if [[ -z $cmd ]]; then
                cmd=${COMP_WORDS[i]}
            else
                ((npos++))
            fi
            ;;
        esac
    done

    if [[ -z $cmd ]]; then
        if [[ $cur == -* ]]; then
            _mcache_reply -W "$_mcache_global_opts --version" -- "$cur"
        else
            _mcache_reply -W "$_mcache_commands" -- "$cur"
        fi
        return
    fi
    if [[ $cur == -* ]]; then
        _mcache_reply -W "$(_mcache_cmd_opts "$cmd") $_mcache_global_opts" -- "$cur"
        return
    fi
    case "$cmd" in
    help)
        ((npos == 0)) && _mcache_reply -W "$_mcache_commands" -- "$cur"
        ;;
    push)
        if ((npos == 0)); then
            _mcache_complete_ref "$cur"
        elif ((npos >= 1)); then
            _mcache_reply -f -- "$cur"
        fi
        ;;
    show | load | evict | pin | unpin | verify | rm | stats)
        ((npos == 0)) && _mcache_complete_ref "$cur"
        ;;
    ls | gc | history | rollback | compare | deployments | alerts | deploy)
        if ((npos == 0)); then
            _mcache_reply -W "$(_mcache_refs | sed 's/@.*//' | uniq)" -- "$cur"
        fi
        ;;
    token)
        if ((npos == 0)); then
            _mcache_reply -W "add ls rm" -- "$cur"
        fi
        ;;
    db)
        if ((npos == 0)); then
            _mcache_reply -W "migrate status" -- "$cur"
        fi
        ;;
    alias)
        if ((npos == 0)); then
            _mcache_reply -W "rm set $(_mcache_refs | sed 's/@.*//' | uniq)" -- "$cur"
        elif ((npos == 1)) && [[ ${COMP_WORDS[COMP_CWORD - 1]} == rm || ${COMP_WORDS[COMP_CWORD - 1]} == set ]]; then
            _mcache_reply -W "$(_mcache_refs | sed 's/@.*//' | uniq)" -- "$cur"
        fi
        ;;
    esac
}

complete -F _mcache mcache

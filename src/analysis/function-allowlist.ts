// The curated function lists: safe PostgreSQL built-ins an agent may call, and the names that are refused.
//
// Names are as PostgreSQL stores them in pg_catalog (lower-case). A call matches these lists
// when written unqualified or qualified with pg_catalog; any other schema is the policy's
// business (allow_functions). The lists hold pure value functions only: nothing here reads
// files, other sessions, the catalogs, settings or server state, or executes SQL text; the
// `session` group is the exception, each entry with the reason it reveals nothing the agent
// does not already know.

/** Safe built-ins by category; the category names are what the refusal's hint mentions. */
export const BUILTIN_FUNCTIONS = {
  math: [
    'abs', 'cbrt', 'ceil', 'ceiling', 'degrees', 'div', 'exp', 'factorial', 'floor', 'gcd', 'lcm', 'ln', 'log',
    'log10', 'min_scale', 'mod', 'pi', 'power', 'pow', 'radians', 'round', 'scale', 'sign', 'sqrt', 'trim_scale',
    'trunc', 'width_bucket', 'random', 'random_normal', 'erf', 'erfc', 'bit_count',
    'acos', 'asin', 'atan', 'atan2', 'cos', 'cot', 'sin', 'tan', 'acosd', 'asind', 'atand', 'atan2d', 'cosd',
    'cotd', 'sind', 'tand', 'sinh', 'cosh', 'tanh', 'asinh', 'acosh', 'atanh',
  ],
  text: [
    'ascii', 'bit_length', 'btrim', 'casefold', 'char_length', 'character_length', 'chr', 'concat', 'concat_ws',
    'convert_from', 'convert_to', 'decode', 'encode', 'format', 'initcap', 'is_normalized', 'left', 'length',
    'lower', 'lpad', 'ltrim', 'md5', 'normalize', 'octet_length', 'overlay', 'position', 'quote_ident',
    'quote_literal', 'quote_nullable', 'regexp_count', 'regexp_instr', 'regexp_like', 'regexp_match',
    'regexp_matches', 'regexp_replace', 'regexp_split_to_array', 'regexp_split_to_table', 'regexp_substr',
    'repeat', 'replace', 'reverse', 'right', 'rpad', 'rtrim', 'sha224', 'sha256', 'sha384', 'sha512',
    'split_part', 'starts_with', 'strpos', 'substr', 'substring', 'to_bin', 'to_hex', 'to_oct', 'translate',
    'unistr', 'upper', 'crc32', 'crc32c', 'get_bit', 'get_byte', 'set_bit', 'set_byte', 'to_char', 'to_number',
    'unicode_assigned', 'pg_collation_for',
    // What LIKE ... ESCAPE and SIMILAR TO parse into.
    'like_escape', 'similar_to_escape', 'similar_escape',
    // Full-text search over values (ts_stat and ts_rewrite, which run SQL text, are refused below).
    'to_tsvector', 'to_tsquery', 'plainto_tsquery', 'phraseto_tsquery', 'websearch_to_tsquery', 'ts_rank',
    'ts_rank_cd', 'ts_headline', 'setweight', 'strip', 'tsvector_to_array', 'array_to_tsvector', 'numnode',
    'querytree', 'ts_delete', 'ts_filter',
  ],
  dates: [
    'age', 'clock_timestamp', 'date_add', 'date_bin', 'date_part', 'date_subtract', 'date_trunc', 'extract',
    'isfinite', 'justify_days', 'justify_hours', 'justify_interval', 'make_date', 'make_interval', 'make_time',
    'make_timestamp', 'make_timestamptz', 'now', 'statement_timestamp', 'timeofday', 'transaction_timestamp',
    'to_date', 'to_timestamp', 'timezone', 'overlaps',
  ],
  json: [
    'to_json', 'to_jsonb', 'array_to_json', 'row_to_json', 'json_build_array', 'jsonb_build_array',
    'json_build_object', 'jsonb_build_object', 'json_object', 'jsonb_object', 'json_array_elements',
    'jsonb_array_elements', 'json_array_elements_text', 'jsonb_array_elements_text', 'json_array_length',
    'jsonb_array_length', 'json_each', 'jsonb_each', 'json_each_text', 'jsonb_each_text', 'json_extract_path',
    'jsonb_extract_path', 'json_extract_path_text', 'jsonb_extract_path_text', 'json_object_keys',
    'jsonb_object_keys', 'json_populate_record', 'jsonb_populate_record', 'jsonb_populate_record_valid',
    'json_populate_recordset', 'jsonb_populate_recordset', 'json_to_record', 'jsonb_to_record',
    'json_to_recordset', 'jsonb_to_recordset', 'json_strip_nulls', 'jsonb_strip_nulls', 'json_typeof',
    'jsonb_typeof', 'jsonb_set', 'jsonb_set_lax', 'jsonb_insert', 'jsonb_pretty', 'jsonb_concat',
    'jsonb_path_exists', 'jsonb_path_match', 'jsonb_path_query', 'jsonb_path_query_array',
    'jsonb_path_query_first', 'jsonb_path_exists_tz', 'jsonb_path_match_tz', 'jsonb_path_query_tz',
    'jsonb_path_query_array_tz', 'jsonb_path_query_first_tz',
  ],
  arrays: [
    'array_append', 'array_cat', 'array_dims', 'array_fill', 'array_length', 'array_lower', 'array_ndims',
    'array_position', 'array_positions', 'array_prepend', 'array_remove', 'array_replace', 'array_reverse',
    'array_sample', 'array_shuffle', 'array_sort', 'array_to_string', 'array_upper', 'cardinality', 'trim_array',
    'unnest', 'generate_series', 'generate_subscripts', 'string_to_array', 'string_to_table',
    // Ranges and multiranges.
    'isempty', 'lower_inc', 'upper_inc', 'lower_inf', 'upper_inf', 'range_merge', 'int4range', 'int8range',
    'numrange', 'tsrange', 'tstzrange', 'daterange', 'int4multirange', 'int8multirange', 'nummultirange',
    'tsmultirange', 'tstzmultirange', 'datemultirange', 'multirange',
  ],
  aggregates: [
    'any_value', 'array_agg', 'avg', 'bit_and', 'bit_or', 'bit_xor', 'bool_and', 'bool_or', 'count', 'every',
    'json_agg', 'json_agg_strict', 'jsonb_agg', 'jsonb_agg_strict', 'json_object_agg', 'jsonb_object_agg',
    'json_object_agg_strict', 'jsonb_object_agg_strict', 'json_object_agg_unique', 'jsonb_object_agg_unique',
    'json_object_agg_unique_strict', 'jsonb_object_agg_unique_strict', 'max', 'min', 'range_agg',
    'range_intersect_agg', 'string_agg', 'sum', 'corr', 'covar_pop', 'covar_samp', 'regr_avgx', 'regr_avgy',
    'regr_count', 'regr_intercept', 'regr_r2', 'regr_slope', 'regr_sxx', 'regr_sxy', 'regr_syy', 'stddev',
    'stddev_pop', 'stddev_samp', 'variance', 'var_pop', 'var_samp', 'mode', 'percentile_cont', 'percentile_disc',
  ],
  window: [
    'row_number', 'rank', 'dense_rank', 'percent_rank', 'cume_dist', 'ntile', 'lag', 'lead', 'first_value',
    'last_value', 'nth_value',
  ],
  // What drivers and ORMs ask a session at connect (SQLAlchemy, TypeORM, Prisma) or when a pool
  // hands a connection back (asyncpg).
  session: [
    // The server's version string: the same fact as the server_version ParameterStatus every
    // client receives at connect, and what drivers parse to choose their SQL.
    'version',
    // The pinned search_path as PostgreSQL resolves it (no statement of the agent can change it).
    // With "$user" in upstream.search_path a schema named after the upstream role would show:
    // the default, and the documented setting, is public alone.
    'current_schema', 'current_schemas',
    // Never reaches the server: the read rewrite replaces it by the database the agent connected to.
    'current_database',
    // Releases the session's advisory locks: every advisory lock function that takes one is
    // refused, so the agent holds none and this has nothing of its to release.
    'pg_advisory_unlock_all',
  ],
  other: [
    'num_nulls', 'num_nonnulls', 'pg_typeof', 'gen_random_uuid', 'uuidv4', 'uuidv7', 'uuid_extract_timestamp',
    'uuid_extract_version',
    // Network address values.
    'abbrev', 'broadcast', 'family', 'host', 'hostmask', 'masklen', 'netmask', 'network', 'set_masklen',
    // Function-style casts to ordinary types, e.g. date(ts), text(n).
    'text', 'date', 'time', 'timetz', 'timestamp', 'timestamptz', 'interval', 'int2', 'int4', 'int8', 'float4',
    'float8', 'numeric', 'bool', 'json', 'jsonb', 'uuid', 'varchar', 'bpchar',
  ],
} as const satisfies Record<string, readonly string[]>;

/**
 * Refused whatever the policy says (pg_catalog names, unqualified or qualified with pg_catalog):
 * they run SQL text the proxy never analyses (so tenant scope and hidden columns would not
 * apply), change session or server state the proxy owns, read or write server files or large
 * objects, reach other servers, signal other sessions, or move sequences and advisory locks
 * that outlive the statement. `*` matches any run of characters.
 */
export const NEVER_ALLOWED: readonly string[] = [
  'set_config', '*_to_xml*', '*_to_xmlschema*', 'ts_stat', 'ts_rewrite', 'dblink*', 'lo_*', 'loread', 'lowrite',
  'pg_read_*', 'pg_ls_*', 'pg_stat_file', 'pg_file_*', 'pg_stat_reset*', 'pg_advisory_lock*',
  'pg_advisory_xact_lock*', 'pg_advisory_unlock', 'pg_advisory_unlock_shared', 'pg_try_advisory*',
  'pg_terminate_backend', 'pg_cancel_backend', 'pg_reload_conf', 'pg_rotate_logfile*', 'pg_promote',
  'pg_switch_wal', 'pg_create_*', 'pg_drop_*', 'pg_replication_*', 'pg_logical_*', 'pg_backup_*',
  'pg_start_backup', 'pg_stop_backup', 'pg_wal_replay_*', 'pg_log_*', 'pg_import_system_collations',
  'pg_export_snapshot', 'pg_notify', 'setval', 'setseed', 'pg_sync_replication_slots', 'pg_copy_*',
  'pg_clear_*', 'pg_restore_*',
];

/**
 * Refused unless the policy lists the name in allow_functions: they reveal the session, the
 * upstream server or the catalogs (names, privileges, definitions, other sessions), or wait.
 * Also a guard: a name matching here is refused even if it were added to BUILTIN_FUNCTIONS.
 */
export const REFUSED_BY_DEFAULT: readonly string[] = [
  'current_setting', 'pg_sleep*', 'pg_stat_*', 'txid_*', 'pg_current_*', 'pg_snapshot_*', 'pg_xact_*',
  'pg_visible_in_snapshot', 'nextval', 'currval', 'lastval', 'has_*_privilege', 'pg_has_role', 'pg_get_*',
  'current_user', 'current_role', 'session_user',
  'system_user', 'user', 'current_query', 'inet_*', 'pg_postmaster_start_time', 'pg_conf_load_time',
  'pg_backend_pid', 'pg_blocking_pids', 'pg_safe_snapshot_blocking_pids', 'pg_jit_available',
  'pg_trigger_depth', 'to_reg*', 'pg_input_*', 'format_type', 'obj_description', 'col_description',
  'shobj_description', 'row_security_active', 'pg_*_is_visible', 'pg_relation_*', 'pg_*_size',
  'pg_size_pretty', 'pg_tablespace_*', 'pg_settings_*', 'pg_options_to_table', 'pg_describe_object',
  'pg_identify_object*', 'pg_column_*', 'pg_index_*', 'pg_indexam_*', 'pg_partition_*', 'pg_event_trigger_*',
  'pg_listening_channels', 'pg_notification_queue_usage', 'pg_is_*', 'pg_last_*', 'pg_control_*',
  'pg_walfile_name*', 'pg_split_walfile_name', 'pg_available_*', 'pg_get_keywords', 'get_current_ts_config',
  'ts_debug', 'pg_sequence_*', 'xpath*', 'xmlexists', 'query_*', 'cursor_*',
];

/**
 * Catalog helpers allowed when the read rewrite runs: it passes each object argument through the
 * policy view of its catalog (rewrite/catalog-functions.ts), so they describe visible objects
 * only and give NULL for any other. pg_get_userbyid answers the agent's own name. Sizes
 * (pg_table_size and the like) stay refused: they count every tenant's rows.
 */
export const CATALOG_FUNCTIONS: readonly string[] = [
  'format_type', 'pg_type_is_visible', 'pg_get_indexdef', 'pg_get_constraintdef', 'pg_get_triggerdef',
  'pg_get_statisticsobjdef_columns', 'pg_table_is_visible', 'pg_relation_is_publishable', 'pg_partition_ancestors',
  'pg_function_is_visible', 'pg_get_function_arguments', 'pg_get_function_result', 'pg_get_function_identity_arguments',
  'has_table_privilege', 'has_any_column_privilege', 'has_sequence_privilege', 'has_schema_privilege',
  'has_function_privilege', 'has_type_privilege', 'has_database_privilege', 'pg_get_expr', 'pg_get_serial_sequence',
  'obj_description', 'col_description', 'pg_get_userbyid', 'pg_encoding_to_char', 'pg_size_pretty',
];

/**
 * Functions of the information_schema schema callable by that qualified name. JDBC's
 * DatabaseMetaData.getIndexInfo and getPrimaryKeys expand pg_index.indkey with
 * `information_schema._pg_expandarray(a)`: the rows (a[i], i) of an array, a pure value function
 * (a SQL function over generate_series) that reads nothing.
 */
export const INFORMATION_SCHEMA_FUNCTIONS: Readonly<Record<string, readonly string[]>> = {
  // Its result columns (OUT parameters), which attribute notation names: (_pg_expandarray(a)).n.
  _pg_expandarray: ['x', 'n'],
};

/** Casts to these reg* types are allowed when the read rewrite runs, which filters what they name the same way. */
export const CATALOG_CASTS: ReadonlySet<string> = new Set(['regclass', 'regtype', 'regnamespace', 'regproc', 'regprocedure']);

/** TABLESAMPLE methods that ship with PostgreSQL; others come from extensions. */
export const BUILTIN_SAMPLE_METHODS: readonly string[] = ['bernoulli', 'system'];

/** Casts to these types look names up in the catalogs (an existence oracle); `_x` is the array type. */
export const REG_TYPES: ReadonlySet<string> = new Set([
  'regclass', 'regproc', 'regprocedure', 'regoper', 'regoperator', 'regtype', 'regrole', 'regnamespace',
  'regconfig', 'regdictionary', 'regcollation', 'aclitem',
]);

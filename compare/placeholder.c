/* temporary: removed when the first real source lands */
int ld_placeholder_compare(void);
int ld_placeholder_compare(void) { return 0; }

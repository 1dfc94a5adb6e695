/* temporary: removed when the first real source lands */
int ld_placeholder_reference(void);
int ld_placeholder_reference(void) { return 0; }

/* placeholder: being written */
typedef int nn_placeholder_init;

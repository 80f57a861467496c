#define _GNU_SOURCE
#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
static int ufd; static int port;
static void *w(void *a){(void)a;struct sockaddr_un s={.sun_family=AF_UNIX};strcpy(s.sun_path,"/nonexistent/x");connect(ufd,(void*)&s,sizeof s);return 0;}
static void *e(void *a){(void)a;usleep(5000);_exit(0);}
int main(int c,char**v){(void)c;port=atoi(v[1]);ufd=socket(AF_UNIX,SOCK_STREAM,0);int u=socket(AF_INET,SOCK_DGRAM,0);
pthread_attr_t at;pthread_attr_init(&at);pthread_attr_setstacksize(&at,65536);pthread_attr_setdetachstate(&at,1);
for(int i=0;i<1100;i++){pthread_t t;pthread_create(&t,&at,w,0);}
pthread_t t;pthread_create(&t,&at,e,0);
struct sockaddr_in a={.sin_family=AF_INET,.sin_port=htons(port)};inet_pton(AF_INET,"127.0.0.1",&a.sin_addr);
sendto(u,"x",1,0,(void*)&a,sizeof a);usleep(100000);return 0;}

"""The chapter's code (d2l 5.2) run in PyTorch, in the order the nngen demo
(examples/d2l/demo.c) runs it, printing the same sections.

Run:  /usr/bin/python3 tests/demo/d2l_reference.py
Differences from the notebook are those the demo documents: outputs are
printed detached (C tensors have no grad_fn), and each initialization
section constructs a fresh network before applying its init function,
because in nngen each initialization is its own spec.
"""
import torch
from torch import nn


def section(title):
    print("\n### " + title)


def main():
    torch.manual_seed(0)
    section("5.2 net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1)); "
            "X = torch.rand(size=(2, 4)); net(X)")
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    X = torch.rand(size=(2, 4))
    print(net(X).detach())

    section("5.2.1 print(len(net))")
    print(len(net))
    section("5.2.1 print(net[1]); print(net[1].state_dict())")
    print(net[1])
    print(net[1].state_dict())
    section("5.2.1 print(net[2].state_dict())")
    print(net[2].state_dict())
    section("5.2.1.1 print(net[2].bias); print(net[2].bias.data)")
    print(net[2].bias)
    print(net[2].bias.data)
    section("5.2.1.1 net[2].weight.grad == None")
    print(net[2].weight.grad == None)  # noqa: E711 (the chapter's own test)
    section("5.2.1.2 named_parameters() of net[0], then of net")
    print(*[(name, param.shape) for name, param in net[0].named_parameters()])
    print(*[(name, param.shape) for name, param in net.named_parameters()])
    section("5.2.1.2 net.state_dict()['2.bias'].data")
    print(net.state_dict()['2.bias'].data)

    def block1():
        return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 4), nn.ReLU())

    def block2():
        net = nn.Sequential()
        for i in range(4):
            net.add_module(f'block{i}', block1())
        return net

    section("5.2.1.3 rgnet = nn.Sequential(block2(), nn.Linear(4, 1)); rgnet(X)")
    rgnet = nn.Sequential(block2(), nn.Linear(4, 1))
    print(rgnet(X).detach())
    section("5.2.1.3 print(rgnet)")
    print(rgnet)
    section("5.2.1.3 rgnet[0][1][0].bias.data")
    print(rgnet[0][1][0].bias.data)

    def fresh():
        return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))

    def init_normal(m):
        if type(m) == nn.Linear:
            nn.init.normal_(m.weight, mean=0, std=0.01)
            nn.init.zeros_(m.bias)

    section("5.2.2.1 net.apply(init_normal); net[0].weight.data[0], net[0].bias.data[0]")
    net = fresh()
    net.apply(init_normal)
    print((net[0].weight.data[0], net[0].bias.data[0]))

    def init_constant(m):
        if type(m) == nn.Linear:
            nn.init.constant_(m.weight, 1)
            nn.init.zeros_(m.bias)

    section("5.2.2.1 net.apply(init_constant); net[0].weight.data[0], net[0].bias.data[0]")
    net = fresh()
    net.apply(init_constant)
    print((net[0].weight.data[0], net[0].bias.data[0]))

    def xavier(m):
        if type(m) == nn.Linear:
            nn.init.xavier_uniform_(m.weight)

    def init_42(m):
        if type(m) == nn.Linear:
            nn.init.constant_(m.weight, 42)

    section("5.2.2.1 net[0].apply(xavier); net[2].apply(init_42); print(net[0].weight.data); "
            "print(net[2].weight.data)")
    net = fresh()
    net[0].apply(xavier)
    net[2].apply(init_42)
    print(net[0].weight.data)
    print(net[2].weight.data)

    def my_init(m):
        if type(m) == nn.Linear:
            print("Init ", *[(name, param.shape) for name, param in m.named_parameters()][0])
            nn.init.uniform_(m.weight, -10, 10)
            m.weight.data *= m.weight.data.abs() >= 5

    section("5.2.2.2 net.apply(my_init); net[0].weight[:2]")
    net = fresh()
    net.apply(my_init)
    print(net[0].weight.data[:2])

    section("5.2.3 shared = nn.Linear(8, 8); net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), "
            "shared, nn.ReLU(), shared, nn.ReLU(), nn.Linear(8, 1)); net(X)")
    shared = nn.Linear(8, 8)
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), shared, nn.ReLU(), shared, nn.ReLU(),
                        nn.Linear(8, 1))
    print(net(X).detach())

    section("5.2.3 net[2].weight.data[0] == net[4].weight.data[0], before and after "
            "net[2].weight.data[0, 0] = 100; print(net[2].weight.data[0])")
    print(net[2].weight.data[0] == net[4].weight.data[0])
    net[2].weight.data[0, 0] = 100
    print(net[2].weight.data[0] == net[4].weight.data[0])
    print(net[2].weight.data[0])

    section("5.2.3 the gradients of the two uses add up: net(X).sum().backward()")
    untied = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(),
                           nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 1))
    with torch.no_grad():
        for i in (0, 2, 6):
            untied[i].weight.copy_(net[i].weight)
            untied[i].bias.copy_(net[i].bias)
        untied[4].weight.copy_(net[2].weight)
        untied[4].bias.copy_(net[2].bias)
    net(X).sum().backward()
    untied(X).sum().backward()
    print("net[2].weight.grad is net[4].weight.grad:", net[2].weight.grad is net[4].weight.grad)
    print("tied net[2].weight.grad[0]:")
    print(net[2].weight.grad[0])
    print("untied net[2].weight.grad[0] + net[4].weight.grad[0]:")
    s = untied[2].weight.grad[0] + untied[4].weight.grad[0]
    print(s)
    print("equal (to 1e-6):", bool((s - net[2].weight.grad[0]).abs().max() <= 1e-6))


if __name__ == "__main__":
    main()
